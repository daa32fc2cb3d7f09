package layering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/ballast-dev/ballast"

// rule is one direction the code must keep. Package patterns are relative
// to the module ("internal/edge") or import paths outside it
// ("helm.sh/helm/v3"); a pattern ending in "/..." also matches everything
// below it.
type rule struct {
	name string
	// from lists the packages the rule is about. Those listed in required
	// must exist, so a rename cannot make the rule hold vacuously.
	from     []string
	required []string
	// except leaves packages out of from (e.g. cmd/... for the flags rule).
	except []string
	// forbid lists what they must not depend on.
	forbid []string
	// allowOnly, if set, is the only module packages they may depend on
	// (outside the module anything goes, subject to forbid).
	allowOnly []string
	// direct judges direct imports only; the default is every transitive
	// dependency of the package's non-test code.
	direct bool
	// pending rules are reported, not enforced, until the code they
	// describe lands.
	pending string
}

// rules are the directions of STYLE.md ("Layout and checks").
var rules = []rule{
	{
		name: "the edge daemon and the gate never import rendering",
		from: []string{"internal/edge", "internal/verify", "internal/syncer", "internal/registry",
			"internal/gitmirror", "internal/sneakernet", "internal/site/...", "internal/helmrepo", "internal/lfs/..."},
		required: []string{"internal/edge", "internal/verify", "internal/helmrepo"},
		forbid:   []string{"internal/render/...", "helm.sh/...", "sigs.k8s.io/kustomize/...", "github.com/sigstore/cosign/..."},
	},
	{
		// Signatures are sigstore's library (crypto, key files, payload)
		// plus the OCI side: no I/O, no cosign CLI packages, no policy.
		name:      "trust knows the generic OCI layer and sigstore's library only",
		from:      []string{"internal/trust/..."},
		required:  []string{"internal/trust"},
		allowOnly: []string{"internal/trust/...", "internal/oci"},
		forbid:    []string{"github.com/sigstore/cosign/...", "github.com/sigstore/rekor/...", "github.com/sigstore/fulcio/..."},
	},
	{
		name:      "the copy engine depends on the generic OCI layer only (no bundle, no policy)",
		from:      []string{"internal/transfer/..."},
		required:  []string{"internal/transfer"},
		allowOnly: []string{"internal/transfer/...", "internal/oci/...", "internal/ocitar", "internal/atomicfile", "internal/progress"},
	},
	{
		name:      "the generic OCI layer knows no bundle format and no policy",
		from:      []string{"internal/oci/..."},
		required:  []string{"internal/oci", "internal/oci/registryclient", "internal/oci/layout"},
		allowOnly: []string{"internal/oci/...", "internal/ocitar", "internal/atomicfile"},
	},
	{
		// Any layer may write files through atomicfile (the one crash-safe
		// write) because it is a leaf: it knows no format and no policy.
		name:      "atomicfile is a leaf",
		from:      []string{"internal/atomicfile"},
		required:  []string{"internal/atomicfile"},
		allowOnly: []string{"internal/atomicfile"},
	},
	{
		name:     "the bundle format sits on the generic OCI layer and does no I/O of its own",
		from:     []string{"internal/bundle/..."},
		required: []string{"internal/bundle"},
		forbid: []string{"internal/transfer/...", "internal/oci/registryclient/...", "internal/oci/layout/...",
			"internal/syncer/...", "internal/release/...", "internal/registry/...", "internal/gitmirror/..."},
	},
	{
		// The edge's Helm repository reads bundles through a Store the
		// daemon gives it: no registry, sync or copy engine of its own.
		name:     "the Helm repository endpoint knows the bundle format and the generic OCI layer only",
		from:     []string{"internal/helmrepo/..."},
		required: []string{"internal/helmrepo"},
		// internal/gitdeps: the bundle format validates the git
		// dependencies it records with the URL policy (no I/O).
		allowOnly: []string{"internal/helmrepo/...", "internal/bundle", "internal/oci", "internal/imageref", "internal/gitdeps"},
	},
	{
		// The edge daemon publishes with it and the hub reads with it: it
		// knows the generic OCI layer and the signature format (signed
		// documents), and nothing of the site's parts.
		name:      "the fleet view sits on the generic OCI layer and signatures only",
		from:      []string{"internal/fleet/..."},
		required:  []string{"internal/fleet"},
		allowOnly: []string{"internal/fleet/...", "internal/oci/...", "internal/ocitar", "internal/atomicfile", "internal/trust"},
		forbid:    []string{"internal/render/...", "helm.sh/...", "sigs.k8s.io/kustomize/..."},
	},
	{
		name:     "the gate uses the registry client, not the copy engine",
		from:     []string{"internal/verify"},
		required: []string{"internal/verify"},
		forbid:   []string{"internal/transfer/...", "internal/syncer/...", "internal/release/..."},
	},
	{
		name:     "the git mirror does not know the registry",
		from:     []string{"internal/gitmirror/..."},
		required: []string{"internal/gitmirror"},
		forbid:   []string{"internal/registry/..."},
	},
	{
		// It reads the mirror's repositories through gitmirror.RunGit and
		// keeps its own store: no registry, bundles or sync policy.
		name:     "the LFS store knows the git mirror only",
		from:     []string{"internal/lfs/..."},
		required: []string{"internal/lfs"},
		forbid:   []string{"internal/registry/...", "internal/syncer/...", "internal/bundle/...", "internal/transfer/...", "internal/release/..."},
	},
	{
		name:     "the registry does not know the git mirror",
		from:     []string{"internal/registry/..."},
		required: []string{"internal/registry"},
		forbid:   []string{"internal/gitmirror/..."},
	},
	{
		name:   "only cmd and cli know flags",
		from:   []string{"..."},
		except: []string{"cmd/...", "internal/cli/..."},
		forbid: []string{"github.com/spf13/cobra/...", "github.com/spf13/pflag/...", "flag"},
		direct: true,
	},
	{
		// The edge site is opened by internal/site (site.Open); cli only
		// turns flags into its options.
		name:     "cli imports no mirror, registry or syncer",
		from:     []string{"internal/cli/..."},
		required: []string{"internal/cli"},
		forbid:   []string{"internal/gitmirror/...", "internal/registry/...", "internal/syncer/..."},
		direct:   true,
	},
	{
		// Concurrency and progress reach release and sneakernet as plain
		// fields (progress.Event), not as engine options.
		name:     "cli imports no copy-engine internals",
		from:     []string{"internal/cli/..."},
		required: []string{"internal/cli"},
		forbid:   []string{"internal/transfer/..."},
		direct:   true,
	},
}

// graph is the import graph of the module's packages and everything they
// depend on (non-test code).
type graph struct {
	imports map[string][]string // by import path
	own     []string            // the module's packages, sorted
}

// listGraph runs `go list -deps` from the module root, with an optional
// -overlay file.
func listGraph(t *testing.T, overlay string) *graph {
	t.Helper()
	root := moduleRoot(t)
	args := []string{"list", "-e", "-deps", "-json=ImportPath,Imports,Standard,Error"}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := &graph{imports: map[string][]string{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		g.imports[p.ImportPath] = p.Imports
		if p.ImportPath == module || strings.HasPrefix(p.ImportPath, module+"/") {
			g.own = append(g.own, p.ImportPath)
		}
	}
	sort.Strings(g.own)
	if len(g.own) == 0 {
		t.Fatal("go list found no packages of the module")
	}
	return g
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(mod)
}

// matches reports whether import path p matches pattern pat: "..." is
// every package of the module; a pattern whose first element is internal,
// cmd or test is relative to the module; "x/..." matches x and below.
func matches(p, pat string) bool {
	if pat == "..." {
		return p == module || strings.HasPrefix(p, module+"/")
	}
	full := pat
	switch first, _, _ := strings.Cut(pat, "/"); first {
	case "internal", "cmd", "test":
		full = module + "/" + pat
	}
	if base, ok := strings.CutSuffix(full, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == full
}

func matchesAny(p string, pats []string) bool {
	return slices.ContainsFunc(pats, func(pat string) bool { return matches(p, pat) })
}

// check returns every violation of r in g, each with the import chain that
// causes it ("a → b → c").
func check(g *graph, r rule) []string {
	var out []string
	for _, req := range r.required {
		if !slices.ContainsFunc(g.own, func(p string) bool { return matches(p, req) }) {
			out = append(out, fmt.Sprintf("package %s does not exist (renamed? update the rule)", req))
		}
	}
	for _, p := range g.own {
		if !matchesAny(p, r.from) || matchesAny(p, r.except) {
			continue
		}
		for _, chain := range r.offending(g, p) {
			out = append(out, strings.Join(short(chain), " → "))
		}
	}
	return out
}

// offending walks p's dependencies (or direct imports) and returns, for each
// dependency the rule refuses, the shortest chain from p to it.
func (r rule) offending(g *graph, p string) [][]string {
	bad := func(d string) bool {
		if matchesAny(d, r.forbid) {
			return true
		}
		own := d == module || strings.HasPrefix(d, module+"/")
		return len(r.allowOnly) > 0 && own && !matchesAny(d, r.allowOnly)
	}
	var found [][]string
	prev := map[string]string{p: ""}
	queue := []string{p}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, d := range g.imports[n] {
			if _, seen := prev[d]; seen {
				continue
			}
			prev[d] = n
			if bad(d) {
				chain := []string{d}
				for c := n; c != ""; c = prev[c] {
					chain = append([]string{c}, chain...)
				}
				found = append(found, chain)
				continue // one chain per refused package is enough
			}
			if !r.direct {
				queue = append(queue, d)
			}
		}
	}
	return found
}

func short(chain []string) []string {
	out := make([]string, len(chain))
	for i, c := range chain {
		out[i] = strings.TrimPrefix(c, module+"/")
	}
	return out
}

// TestLayering enforces the rules on the module as it is.
func TestLayering(t *testing.T) {
	g := listGraph(t, "")
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			v := check(g, r)
			if r.pending != "" {
				t.Logf("PENDING, not enforced (%s); %d violation(s) today:\n  %s", r.pending, len(v), strings.Join(v, "\n  "))
				return
			}
			if len(v) > 0 {
				t.Errorf("%d violation(s):\n  %s", len(v), strings.Join(v, "\n  "))
			}
		})
	}
}

// TestLayeringCatches shows each kind of rule failing, on a made-up graph,
// and once on the real module with a deliberately bad import laid over it
// (go list -overlay), so the check cannot pass for want of looking.
func TestLayeringCatches(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	g := &graph{imports: map[string][]string{
		m("internal/edge"):               {m("internal/syncer"), "net/http"},
		m("internal/syncer"):             {m("internal/release")},
		m("internal/release"):            {"helm.sh/helm/v3/pkg/chart"},
		m("internal/verify"):             {m("internal/oci/registryclient"), m("internal/transfer")},
		m("internal/transfer"):           {m("internal/oci"), m("internal/bundle")},
		m("internal/oci"):                {"encoding/json"},
		m("internal/oci/layout"):         {m("internal/oci"), "flag"},
		m("internal/bundle"):             {m("internal/oci"), m("internal/oci/registryclient")},
		m("internal/gitmirror"):          {m("internal/registry")},
		m("internal/registry"):           nil,
		m("internal/helmrepo"):           {m("internal/bundle")},
		m("internal/oci/registryclient"): {m("internal/oci")},
		m("cmd/ballast"):                 {"github.com/spf13/cobra"},
	}}
	for p := range g.imports {
		if strings.HasPrefix(p, module+"/") {
			g.own = append(g.own, p)
		}
	}
	sort.Strings(g.own)
	byName := map[string]rule{}
	for _, r := range rules {
		byName[r.name] = r
	}
	tests := []struct {
		rule string
		want []string // violations, in order
	}{
		{"the edge daemon and the gate never import rendering", []string{
			"internal/edge → internal/syncer → internal/release → helm.sh/helm/v3/pkg/chart",
			"internal/syncer → internal/release → helm.sh/helm/v3/pkg/chart",
		}},
		{"the copy engine depends on the generic OCI layer only (no bundle, no policy)", []string{
			"internal/transfer → internal/bundle",
		}},
		{"the gate uses the registry client, not the copy engine", []string{
			"internal/verify → internal/transfer",
		}},
		{"the git mirror does not know the registry", []string{
			"internal/gitmirror → internal/registry",
		}},
		{"only cmd and cli know flags", []string{
			"internal/oci/layout → flag",
		}},
		{"the registry does not know the git mirror", nil},
		{"the bundle format sits on the generic OCI layer and does no I/O of its own", []string{
			"internal/bundle → internal/oci/registryclient",
		}},
		{"the generic OCI layer knows no bundle format and no policy", nil},
		{"the Helm repository endpoint knows the bundle format and the generic OCI layer only", []string{
			"internal/helmrepo → internal/bundle → internal/oci/registryclient",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			r, ok := byName[tc.rule]
			if !ok {
				t.Fatalf("no rule %q", tc.rule)
			}
			got := check(g, r)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("violations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
	t.Run("a renamed package is a violation, not a pass", func(t *testing.T) {
		got := check(&graph{own: []string{m("internal/other")}}, byName["the gate uses the registry client, not the copy engine"])
		if len(got) != 1 || !strings.Contains(got[0], "internal/verify does not exist") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("a bad import laid over the real module", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.go")
		src := "package transfer\n\nimport _ \"" + module + "/internal/bundle\"\n"
		if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		at := filepath.Join(moduleRoot(t), "internal", "transfer", "zz_layering_bad.go")
		ov, _ := json.Marshal(map[string]map[string]string{"Replace": {at: bad}})
		overlay := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(overlay, ov, 0o644); err != nil {
			t.Fatal(err)
		}
		got := check(listGraph(t, overlay), byName["the copy engine depends on the generic OCI layer only (no bundle, no policy)"])
		if !slices.Contains(got, "internal/transfer → internal/bundle") {
			t.Fatalf("the overlaid import of bundle into transfer was not caught: %q", got)
		}
	})
}
