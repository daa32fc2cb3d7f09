package gitmirror_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// exportBundle writes a git bundle of repo holding each commit as
// refs/ballast/export/<sha> (as `ballast export` does), excluding what
// the prerequisites reach.
func exportBundle(t *testing.T, r *gitserver.Repo, commits []string, prereq ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dep.bundle")
	args := []string{"bundle", "create", "--quiet", out}
	for _, c := range commits {
		r.Git("update-ref", "refs/ballast/export/"+c, c)
		args = append(args, "refs/ballast/export/"+c)
	}
	for _, p := range prereq {
		args = append(args, "^"+p)
	}
	r.Git(args...)
	return out
}

// Dependency commits loaded from export files, with the upstream down:
// kept, served by SHA, persisted across a restart; a bundle that lacks a
// claimed commit or whose prerequisites the mirror lacks is an ErrBundle
// error and keeps nothing.
func TestLoadDepBundle(t *testing.T) {
	up := gitserver.New(t)
	app := up.CreateRepo(t, "fleet/apps")
	app.Commit("main", map[string]string{"a": "1"})
	lib := up.CreateRepo(t, "fleet/lib")
	c1 := lib.Commit("main", map[string]string{"lib.txt": "1\n"})
	c2 := lib.Commit("main", map[string]string{"lib.txt": "2\n"})
	other := up.CreateRepo(t, "fleet/other")
	o1 := other.Commit("main", map[string]string{"o": "1"})
	full1 := exportBundle(t, lib, []string{c1})
	incr2 := exportBundle(t, lib, []string{c2}, c1)
	wrong := exportBundle(t, other, []string{o1})
	libURL := up.URL("fleet/lib")

	h := startMirror(t, "", []string{app.Name}, func(o *gitmirror.Options) {
		o.Upstreams = []gitmirror.Upstream{{URL: up.URL("fleet/apps"), PollInterval: 1 << 40}}
	})
	h.poll(up.URL("fleet/apps"))
	up.Stop()
	ctx := context.Background()

	// An incremental bundle before its base: refused, nothing kept.
	if err := h.m.LoadDepBundle(ctx, libURL, incr2, []string{c2}); !errors.Is(err, gitmirror.ErrBundle) {
		t.Fatalf("bundle without its prerequisite: %v", err)
	}
	if err := h.m.LoadDepBundle(ctx, libURL, full1, []string{c1}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.LoadDepBundle(ctx, libURL, incr2, []string{c2}); err != nil {
		t.Fatal(err)
	}
	// Another repository's bundle claimed for lib's commit.
	bogus := strings.Repeat("e", 40)
	err := h.m.LoadDepBundle(ctx, libURL, wrong, []string{bogus})
	if !errors.Is(err, gitmirror.ErrBundle) || !strings.Contains(err.Error(), "does not hold") {
		t.Fatalf("bundle without the claimed commit: %v", err)
	}
	check := func() {
		t.Helper()
		st, ok := depStatus(h, "127.0.0.1"+strings.TrimPrefix(strings.TrimSuffix(libURL, ".git"), "http://127.0.0.1"))
		if !ok {
			t.Fatalf("no dependency status: %+v", h.m.GitDeps())
		}
		if !slices.Contains(st.Commits, c1) || !slices.Contains(st.Commits, c2) || slices.Contains(st.Missing, c1) || slices.Contains(st.Missing, c2) {
			t.Fatalf("status %+v", st)
		}
		// Served by SHA with every upstream down.
		dir := t.TempDir()
		git(t, dir, "init", "-q")
		git(t, dir, "fetch", "-q", h.url(libURL), c2)
		if got := git(t, dir, "show", c2+":lib.txt"); got != "2" {
			t.Fatalf("lib.txt at c2: %q", got)
		}
	}
	check()
	// Nothing of the refused bundles is left in the incoming namespace.
	bare := filepath.Join(h.dataDir, "git", "127.0.0.1"+strings.TrimPrefix(libURL, "http://127.0.0.1"))
	if refs := git(t, bare, "for-each-ref", "refs/ballast/incoming/"); refs != "" {
		t.Fatalf("incoming refs left: %s", refs)
	}
	h.restart()
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("pass after restart, upstream down: %v", err)
	}
	for _, st := range h.m.GitDeps() {
		if slices.Contains(st.Commits, bogus) {
			t.Fatalf("a refused bundle's claimed commit became a need: %+v", st)
		}
	}
	check()
}
