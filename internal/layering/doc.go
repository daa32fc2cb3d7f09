// Package layering holds no code: its test enforces, with `go list -deps`,
// the directions between packages that STYLE.md names (the edge daemon and
// the gate never import rendering, the copy engine and the generic OCI layer
// know no bundle or policy, the git mirror and the registry don't know each
// other, only cmd and cli know flags). Add a rule to the table in
// layering_test.go when a new direction matters.
package layering
