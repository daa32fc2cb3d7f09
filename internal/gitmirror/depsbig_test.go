package gitmirror_test

import (
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// TestSubmodulesHugeGitmodules: a .gitmodules blob of megabytes (it
// compresses to nothing in a pack, so it costs the pusher nothing) is
// refused before git's parse of it is read into the daemon's memory.
func TestSubmodulesHugeGitmodules(t *testing.T) {
	up := gitserver.New(t)
	ok := up.CreateRepo(t, "fleet/ok")
	okSHA := ok.Commit("main", map[string]string{"ok.txt": "ok\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	gm := "[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n\tpad = " + strings.Repeat("a", 8<<20) + "\n"
	apps.CommitChange("main", gitserver.Change{
		Files:    map[string]string{".gitmodules": gm},
		Gitlinks: map[string]string{"ok": okSHA},
	})
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	err := syncDeps(t, h)
	if err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("err = %v, want the .gitmodules refused for its size", err)
	}
	if deps := h.m.GitDeps(); len(deps) != 0 {
		t.Fatalf("something of a refused .gitmodules is mirrored: %+v", deps)
	}
}
