package bundle

import (
	"strings"
	"testing"
)

// Each dependency commit once, in order, keyed as the mirror keys
// repositories (ids case-insensitively); a URL the mirror cannot name is
// an error.
func TestDistinctCommits(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	got, err := DistinctCommits([]GitDep{
		{Kind: GitDepSubmodule, URL: "https://github.com/Fleet/lib.git", Commit: a, Path: "vendor/lib"},
		{Kind: GitDepRemoteBase, URL: "https://github.com/fleet/lib", Commit: a, Path: "deploy"},
		{Kind: GitDepRemoteBase, URL: "https://github.com/fleet/lib", Commit: b, Path: "deploy"},
		{Kind: GitDepSubmodule, URL: "git@gitlab.com:org/x.git", Commit: a, Path: "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range got {
		keys = append(keys, c.ID+"@"+c.Dep.Commit[:1]+" "+c.Dep.Path)
	}
	want := []string{"github.com/Fleet/lib@a vendor/lib", "github.com/fleet/lib@b deploy", "gitlab.com/org/x@a x"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("DistinctCommits = %q, want %q", keys, want)
	}
	if _, err := DistinctCommits([]GitDep{{URL: "not a url", Commit: a}}); err == nil || !strings.Contains(err.Error(), "not a url") {
		t.Fatalf("bad URL: %v", err)
	}
}
