package gitmirror_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	gogitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

func syncDeps(t *testing.T, h *harness) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return h.m.SyncGitDeps(ctx)
}

func depStatus(h *harness, id string) (gitmirror.DepStatus, bool) {
	for _, s := range h.m.GitDeps() {
		if strings.EqualFold(s.ID, id) {
			return s, true
		}
	}
	return gitmirror.DepStatus{}, false
}

// clientGitconfig writes the insteadOf rules install would give Argo CD's
// repo-server for the upstream hosts, pointed at the test mirror.
func clientGitconfig(t *testing.T, h *harness, upstreams ...string) []string {
	t.Helper()
	rules, err := gitdeps.Rules(h.srv.URL, gitdeps.Hosts(upstreams...))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(p, []byte(gitdeps.GitConfig(rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"GIT_CONFIG_GLOBAL=" + p}
}

func clientGit(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	out, err := clientGitErr(env, dir, args...)
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(out)
}

func clientGitErr(env []string, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := execGit(ctx, dir, args...)
	cmd.Env = append(gitserver.Env(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Submodules (relative and absolute URLs, with and without .git, nested)
// are found from the branch tips, mirrored with only their needed commits,
// and served from the mirror with every upstream stopped; the mirror
// keeps them across a restart and after a later revision drops one.
func TestSubmodulesMirrored(t *testing.T) {
	up := gitserver.New(t)
	other := gitserver.New(t) // another host
	inner := up.CreateRepo(t, "fleet/inner")
	innerSHA := inner.Commit("main", map[string]string{"inner.txt": "inner\n"})
	lib := up.CreateRepo(t, "fleet/lib")
	libSHA := lib.CommitChange("main", gitserver.Change{
		Files:    map[string]string{"lib.txt": "lib\n", ".gitmodules": "[submodule \"inner\"]\n\tpath = inner\n\turl = ../inner\n"},
		Gitlinks: map[string]string{"inner": innerSHA},
	})
	lib.Commit("main", map[string]string{"later.txt": "not needed\n"}) // the tip moves on: not needed
	tool := other.CreateRepo(t, "ext/tool")
	toolSHA := tool.Commit("main", map[string]string{"tool.txt": "tool\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	rev1 := apps.CommitChange("main", gitserver.Change{
		Files: map[string]string{
			"app.txt": "app\n",
			".gitmodules": "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n" +
				"[submodule \"tool\"]\n\tpath = vendor/tool\n\turl = " + strings.TrimSuffix(other.URL("ext/tool"), ".git") + "\n",
		},
		Gitlinks: map[string]string{"vendor/lib": libSHA, "vendor/tool": toolSHA},
	})

	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps: %v\n%s", err, h.logs)
	}
	for id, want := range map[string]string{
		up.Addr() + "/fleet/lib": libSHA, up.Addr() + "/fleet/inner": innerSHA, other.Addr() + "/ext/tool": toolSHA,
	} {
		s, ok := depStatus(h, id)
		if !ok || len(s.Commits) != 1 || s.Commits[0] != want || len(s.Missing) > 0 {
			t.Fatalf("%s: %+v (found %v), want commit %s\n%v", id, s, ok, want, h.m.GitDeps())
		}
	}
	// Only the needed commits: the lib tip that moved on is not fetched.
	libDir := filepath.Join(h.dataDir, "git", up.Addr(), "fleet", "lib.git")
	if out, err := gitErr(t, "", "--git-dir="+libDir, "cat-file", "-e", lib.Rev("main")); err == nil {
		t.Fatalf("lib's later tip was fetched too: %s", out)
	}

	up.Stop()
	other.Stop()
	env := clientGitconfig(t, h, up.URL("fleet/apps"), other.URL("ext/tool"))
	work := t.TempDir()
	clientGit(t, env, work, "clone", "-q", "--recurse-submodules", h.url(up.URL("fleet/apps")), "co")
	for _, f := range []string{"app.txt", "vendor/lib/lib.txt", "vendor/lib/inner/inner.txt", "vendor/tool/tool.txt"} {
		if _, err := os.Stat(filepath.Join(work, "co", f)); err != nil {
			t.Errorf("clone through the mirror lacks %s: %v", f, err)
		}
	}

	// A later revision drops the lib submodule: rev1's stays (rollback).
	up.Start(t)
	other.Start(t)
	apps.CommitChange("main", gitserver.Change{
		Files:  map[string]string{".gitmodules": "[submodule \"tool\"]\n\tpath = vendor/tool\n\turl = " + other.URL("ext/tool") + "\n"},
		Remove: []string{"vendor/lib"},
	})
	h.poll(up.URL("fleet/apps"))
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps after removal: %v", err)
	}
	h.restart()
	up.Stop()
	other.Stop()
	if s, ok := depStatus(h, up.Addr()+"/fleet/lib"); !ok || len(s.Commits) != 1 {
		t.Fatalf("lib need lost across a restart: %+v", h.m.GitDeps())
	}
	env = clientGitconfig(t, h, up.URL("fleet/apps"), other.URL("ext/tool")) // the restarted mirror listens elsewhere
	co2 := filepath.Join(work, "co2")
	clientGit(t, env, work, "clone", "-q", h.url(up.URL("fleet/apps")), "co2")
	if _, err := os.Stat(filepath.Join(co2, ".gitmodules")); err != nil {
		t.Fatal(err)
	}
	clientGit(t, env, co2, "checkout", "-q", rev1)
	clientGit(t, env, co2, "submodule", "update", "--init", "--recursive")
	if _, err := os.Stat(filepath.Join(co2, "vendor/lib/inner/inner.txt")); err != nil {
		t.Fatalf("rollback to rev1 offline: %v", err)
	}
}

// Remote bases recorded by a bundle (by tag and by commit) are served:
// kustomize's `git fetch --depth=1 origin <ref>` works from the mirror,
// and go-git (Argo CD's ls-remote client) sees the tag.
func TestRemoteBasesMirrored(t *testing.T) {
	up := gitserver.New(t)
	base := up.CreateRepo(t, "fleet/base")
	v1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	base.Git("tag", "-a", "-m", "v1.2", "v1.2", v1)
	v2 := base.Commit("main", map[string]string{"deploy/x.yaml": "x\n"})
	base.Commit("main", map[string]string{"deploy/y.yaml": "not needed\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	rev := apps.Commit("main", map[string]string{"a.txt": "a\n"})
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	ctx := context.Background()
	if err := h.m.NeedGitDeps(ctx, up.URL("fleet/apps"), rev, []gitmirror.Dep{
		{URL: up.URL("fleet/base"), Commit: v1, Ref: "v1.2"},
		{URL: up.URL("fleet/base"), Commit: v2, Ref: v2},
	}); err != nil {
		t.Fatal(err)
	}
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps: %v\n%s", err, h.logs)
	}
	up.Stop()
	env := clientGitconfig(t, h, up.URL("fleet/apps"))
	for ref, want := range map[string]string{"v1.2": v1, v2: v2} {
		dir := t.TempDir()
		clientGit(t, env, dir, "init", "-q")
		clientGit(t, env, dir, "remote", "add", "origin", up.URL("fleet/base"))
		clientGit(t, env, dir, "fetch", "-q", "--depth=1", "origin", ref)
		if got := clientGit(t, env, dir, "rev-parse", "FETCH_HEAD^{commit}"); got != want {
			t.Errorf("fetch %s through the mirror: %s, want %s", ref, got, want)
		}
	}
	rem := gogit.NewRemote(memory.NewStorage(), &gogitconfig.RemoteConfig{Name: "origin", URLs: []string{h.url(up.URL("fleet/base"))}})
	refs, err := rem.List(&gogit.ListOptions{})
	if err != nil {
		t.Fatalf("go-git ls-remote: %v", err)
	}
	found := false
	for _, r := range refs {
		if r.Name().String() == "refs/tags/v1.2" {
			found = true
		}
	}
	if !found {
		t.Errorf("go-git does not see refs/tags/v1.2: %v", refs)
	}
	if err := h.m.NeedGitDeps(ctx, up.URL("fleet/apps"), rev, []gitmirror.Dep{{URL: "--upload-pack=touch /tmp/x", Commit: v1}}); err == nil {
		t.Error("option-like URL accepted")
	}
	if err := h.m.NeedGitDeps(ctx, up.URL("fleet/apps"), rev, []gitmirror.Dep{{URL: up.URL("fleet/base"), Commit: v1, Ref: "--force"}}); err == nil {
		t.Error("option-like ref accepted")
	}
}

// A revision whose .gitmodules is refused (a path or URL escape, an
// option-like URL or path) adds nothing: clear error, nothing partial.
func TestSubmodulesBadInput(t *testing.T) {
	for name, gm := range map[string]string{
		"url escape":   "[submodule \"a\"]\n\tpath = a\n\turl = ../../../../../x.git\n[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n",
		"path escape":  "[submodule \"a\"]\n\tpath = ../a\n\turl = ../x.git\n[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n",
		"option url":   "[submodule \"a\"]\n\tpath = a\n\turl = -uevil\n[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n",
		"upload-pack":  "[submodule \"a\"]\n\tpath = a\n\turl = --upload-pack=touch /tmp/pwned\n[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n",
		"option path":  "[submodule \"a\"]\n\tpath = -a\n\turl = ../x.git\n[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n",
		"ext protocol": "[submodule \"a\"]\n\tpath = a\n\turl = ext::sh -c touch% /tmp/pwned\n[submodule \"ok\"]\n\tpath = ok\n\turl = ../ok.git\n",
	} {
		t.Run(name, func(t *testing.T) {
			up := gitserver.New(t)
			ok := up.CreateRepo(t, "fleet/ok")
			okSHA := ok.Commit("main", map[string]string{"ok.txt": "ok\n"})
			apps := up.CreateRepo(t, "fleet/apps")
			apps.CommitChange("main", gitserver.Change{
				Files:    map[string]string{".gitmodules": gm},
				Gitlinks: map[string]string{"a": okSHA, "ok": okSHA, "-a": okSHA},
			})
			h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
			h.poll(up.URL("fleet/apps"))
			err := syncDeps(t, h)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if deps := h.m.GitDeps(); len(deps) != 0 {
				t.Fatalf("something of a refused .gitmodules is mirrored: %+v", deps)
			}
		})
	}
}

func execGit(ctx context.Context, dir string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
}

// A dependency fetch killed mid-way (kill -9 of git) leaves nothing
// trusted: the next pass fetches the commit again and it is served.
func TestSubmoduleFetchKilled(t *testing.T) {
	up := gitserver.New(t)
	lib := up.CreateRepo(t, "fleet/lib")
	libSHA := lib.CommitN("main", 50)
	apps := up.CreateRepo(t, "fleet/apps")
	apps.CommitChange("main", gitserver.Change{
		Files:    map[string]string{".gitmodules": "[submodule \"lib\"]\n\tpath = lib\n\turl = ../lib.git\n"},
		Gitlinks: map[string]string{"lib": libSHA},
	})
	// Fetch 1 is the superproject's clone, fetch 2 the submodule's.
	var fetches atomic.Int32
	var killed atomic.Bool
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil, func(m *gitmirror.Mirror) {
		gitmirror.SetFetchStartedHook(m, func(pid int) {
			if fetches.Add(1) == 2 && killed.CompareAndSwap(false, true) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	})
	h.poll(up.URL("fleet/apps"))
	deadline := time.Now().Add(time.Minute)
	for !killed.Load() && time.Now().Before(deadline) {
		_ = syncDeps(t, h)
	}
	if !killed.Load() {
		t.Fatal("no dependency fetch was started")
	}
	h.restart() // the hook is not set again; start-up removes what the killed git left
	libDir := filepath.Join(h.dataDir, "git", up.Addr(), "fleet", "lib.git")
	if left, _ := filepath.Glob(filepath.Join(libDir, "objects", "pack", "tmp_*")); len(left) > 0 {
		t.Fatalf("leftovers of the killed fetch after restart: %v", left)
	}
	git(t, "", "--git-dir="+libDir, "fsck", "--connectivity-only")
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("pass after the killed fetch: %v\n%s", err, h.logs)
	}
	if s, ok := depStatus(h, up.Addr()+"/fleet/lib"); !ok || len(s.Missing) != 0 || len(s.Commits) != 1 {
		t.Fatalf("after restart: %+v", h.m.GitDeps())
	}
	dir := t.TempDir()
	clientGit(t, nil, dir, "init", "-q")
	clientGit(t, nil, dir, "fetch", "-q", h.url(up.URL("fleet/lib")), libSHA)
}

// With tracked refs named, discovery reads only their tips: a submodule
// that only an untracked branch adds is not mirrored.
func TestSubmodulesOfTrackedTipsOnly(t *testing.T) {
	up := gitserver.New(t)
	lib := up.CreateRepo(t, "fleet/lib")
	libSHA := lib.Commit("main", map[string]string{"lib.txt": "lib\n"})
	stray := up.CreateRepo(t, "fleet/stray")
	straySHA := stray.Commit("main", map[string]string{"stray.txt": "stray\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	apps.CommitChange("main", gitserver.Change{
		Files:    map[string]string{".gitmodules": "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n"},
		Gitlinks: map[string]string{"vendor/lib": libSHA},
	})
	apps.CommitChange("feature", gitserver.Change{
		Files:    map[string]string{".gitmodules": "[submodule \"stray\"]\n\tpath = vendor/stray\n\turl = ../stray.git\n"},
		Gitlinks: map[string]string{"vendor/stray": straySHA},
	})
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.Upstreams[0].Track = []string{"refs/heads/main"}
	})
	h.poll(up.URL("fleet/apps"))
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps: %v\n%s", err, h.logs)
	}
	if s, ok := depStatus(h, up.Addr()+"/fleet/lib"); !ok || len(s.Commits) != 1 || s.Commits[0] != libSHA {
		t.Fatalf("the tracked tip's submodule: %+v (found %v)", s, ok)
	}
	if s, ok := depStatus(h, up.Addr()+"/fleet/stray"); ok {
		t.Fatalf("an untracked branch's submodule is mirrored: %+v", s)
	}
}

// DepsFetched is the mirror telling readers of a dependency's commits
// (the readiness gate, the LFS store) to look again: when it is called,
// the commits just fetched must be visible to HasCommit, also for a
// dependency repository fetched for the first time. Otherwise the gate
// looks, finds nothing, and is not told again.
func TestDepsFetchedSeesCommits(t *testing.T) {
	up := gitserver.New(t)
	base := up.CreateRepo(t, "fleet/base")
	v1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	apps := up.CreateRepo(t, "fleet/apps")
	rev := apps.Commit("main", map[string]string{"a.txt": "a\n"})
	var (
		m     atomic.Pointer[gitmirror.Mirror]
		calls atomic.Int32
		seen  atomic.Int32
	)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.DepsFetched = func() {
			calls.Add(1)
			if held, err := m.Load().HasCommit(context.Background(), up.URL("fleet/base"), v1); err == nil && held {
				seen.Add(1)
			}
		}
	}, func(mm *gitmirror.Mirror) { m.Store(mm) })
	h.poll(up.URL("fleet/apps"))
	if err := h.m.NeedGitDeps(context.Background(), up.URL("fleet/apps"), rev, []gitmirror.Dep{{URL: up.URL("fleet/base"), Commit: v1}}); err != nil {
		t.Fatal(err)
	}
	if err := syncDeps(t, h); err != nil {
		t.Fatalf("sync deps: %v\n%s", err, h.logs)
	}
	if held, err := h.m.HasCommit(context.Background(), up.URL("fleet/base"), v1); err != nil || !held {
		t.Fatalf("after the pass: HasCommit = %v, %v", held, err)
	}
	if calls.Load() == 0 {
		t.Fatal("DepsFetched not called")
	}
	if seen.Load() == 0 {
		t.Fatalf("DepsFetched called %d times, and HasCommit did not see the fetched commit in any of them", calls.Load())
	}
}
