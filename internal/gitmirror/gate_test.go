package gitmirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	gogitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/ballast-dev/ballast/internal/gitmirror"
)

// lsRemoteGoGit lists the mirror's refs as Argo CD does: go-git, protocol
// v0. Symrefs map to "-> target".
func lsRemoteGoGit(t testing.TB, url string) map[string]string {
	t.Helper()
	rem := gogit.NewRemote(memory.NewStorage(), &gogitconfig.RemoteConfig{Name: "origin", URLs: []string{url}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	refs, err := rem.ListContext(ctx, &gogit.ListOptions{})
	if err != nil {
		t.Fatalf("go-git ls-remote %s: %v", url, err)
	}
	got := map[string]string{}
	for _, ref := range refs {
		if ref.Type() == plumbing.SymbolicReference {
			got[ref.Name().String()] = "-> " + ref.Target().String()
		} else {
			got[ref.Name().String()] = ref.Hash().String()
		}
	}
	return got
}

// lsRemoteCLI lists the mirror's refs with the git CLI and protocol v2.
func lsRemoteCLI(t testing.TB, url string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(git(t, "", "-c", "protocol.version=2", "ls-remote", "--symref", url), "\n") {
		left, name, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if target, sym := strings.CutPrefix(left, "ref: "); sym {
			got[name] = "-> " + target
		} else if name != "HEAD" {
			got[name] = left
		}
	}
	return got
}

func TestGatedBranches(t *testing.T) {
	up, r := upstreamWithHistory(t)
	u := up.URL("fleet/apps")
	id := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), ".git")
	h := startMirror(t, "", []string{u}, func(o *gitmirror.Options) { o.Upstreams[0].Gated = []string{"refs/heads/main"} })
	h.poll(u)
	ctx := context.Background()
	mainTip, older := r.Rev("main"), r.Rev("main~1")

	// Nothing is ready yet: main is not advertised; the rest is.
	for name, ls := range map[string]func(testing.TB, string) map[string]string{"go-git": lsRemoteGoGit, "git v2": lsRemoteCLI} {
		got := ls(t, h.url(u))
		if _, ok := got["refs/heads/main"]; ok {
			t.Errorf("%s: main advertised before it is ready: %v", name, got)
		}
		if got["refs/heads/feature"] != r.Rev("feature") || got["refs/tags/v1.0.0"] != older {
			t.Errorf("%s: untracked branch or tag not served as usual: %v", name, got)
		}
		for k := range got {
			if strings.HasPrefix(k, "refs/ballast/") {
				t.Errorf("%s: hidden ref %s advertised", name, k)
			}
		}
	}
	// Sync sees the upstream tips.
	tips, err := h.m.RefTips(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if tips[1].Name != "refs/heads/main" || tips[1].Object != mainTip {
		t.Fatalf("RefTips = %+v, want main at the upstream tip", tips)
	}

	if err := h.m.SetReady(ctx, id, "refs/heads/main", older); err != nil {
		t.Fatal(err)
	}
	for name, ls := range map[string]func(testing.TB, string) map[string]string{"go-git": lsRemoteGoGit, "git v2": lsRemoteCLI} {
		got := ls(t, h.url(u))
		if got["refs/heads/main"] != older || got["HEAD"] != "-> refs/heads/main" {
			t.Errorf("%s: main = %q, HEAD = %q; want %s and the symref", name, got["refs/heads/main"], got["HEAD"], older)
		}
	}
	// A clone gets the ready revision; the upstream tip is fetchable by SHA.
	dst := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(u), dst)
	if got := git(t, dst, "rev-parse", "HEAD"); got != older {
		t.Errorf("clone HEAD = %s, want %s", got, older)
	}
	for _, v := range []string{"0", "2"} {
		git(t, dst, "-c", "protocol.version="+v, "fetch", "--quiet", "origin", mainTip)
	}
	if got := git(t, dst, "cat-file", "-t", mainTip); got != "commit" {
		t.Errorf("upstream tip not fetched by SHA: %s", got)
	}
	st, err := h.m.Repo(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Advertised) != 1 || st.Advertised[0].Commit != older || len(st.Gated) != 1 {
		t.Errorf("status: gated %v advertised %+v", st.Gated, st.Advertised)
	}
	if adv, err := h.m.Advertised(ctx, id); err != nil || len(adv) != 1 || adv[0].Commit != older {
		t.Errorf("Advertised = %+v, %v", adv, err)
	}

	t.Run("bad calls", func(t *testing.T) {
		for _, tc := range []struct {
			ref, sha string
			want     string
		}{
			{"refs/heads/feature", older, "not gated"},
			{"refs/heads/main", "xyz", "full hex"},
			{"refs/heads/main", strings.Repeat("ab", 20), "not in the mirror"},
		} {
			err := h.m.SetReady(ctx, id, tc.ref, tc.sha)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SetReady(%s, %s) = %v, want %q", tc.ref, tc.sha, err, tc.want)
			}
		}
	})

	// Upstream moves: the advertised revision stays.
	newTip := r.Commit("main", map[string]string{"new": "1"})
	h.poll(u)
	if got := lsRemoteGoGit(t, h.url(u))["refs/heads/main"]; got != older {
		t.Errorf("after upstream moved: main = %s, want it to stay at %s", got, older)
	}
	// Untracked branches follow the upstream.
	feat := r.Commit("feature", map[string]string{"f2": "1"})
	h.poll(u)
	if got := lsRemoteCLI(t, h.url(u))["refs/heads/feature"]; got != feat {
		t.Errorf("feature = %s, want %s", got, feat)
	}

	// A restart keeps what was advertised.
	h.restart()
	if got := lsRemoteGoGit(t, h.url(u))["refs/heads/main"]; got != older {
		t.Errorf("after restart: main = %s, want %s", got, older)
	}
	if err := h.m.SetReady(ctx, id, "refs/heads/main", newTip); err != nil {
		t.Fatal(err)
	}
	if got := lsRemoteCLI(t, h.url(u))["refs/heads/main"]; got != newTip {
		t.Errorf("main = %s, want %s", got, newTip)
	}

	// Withdrawn, then deleted upstream: not advertised again.
	if err := h.m.SetReady(ctx, id, "refs/heads/main", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := lsRemoteGoGit(t, h.url(u))["refs/heads/main"]; ok {
		t.Error("main still advertised after withdrawal")
	}
	if err := h.m.SetReady(ctx, id, "refs/heads/main", newTip); err != nil {
		t.Fatal(err)
	}
	r.SetHEAD("feature")
	r.DeleteBranch("main")
	h.poll(u)
	if _, ok := lsRemoteCLI(t, h.url(u))["refs/heads/main"]; ok {
		t.Error("main advertised after the upstream deleted it")
	}
	if err := h.m.SetReady(ctx, id, "refs/heads/main", newTip); !errors.Is(err, gitmirror.ErrBranchGone) {
		t.Errorf("SetReady of a deleted branch = %v, want ErrBranchGone", err)
	}
	// Its last tips stay fetchable: the keep refs hold them.
	git(t, dst, "fetch", "--quiet", h.url(u), newTip)
}

func TestGateSwitchedOnAndOff(t *testing.T) {
	up, r := upstreamWithHistory(t)
	u := up.URL("fleet/apps")
	id := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), ".git")
	dataDir := tempDir(t)
	h := startMirror(t, dataDir, []string{u}, nil)
	h.poll(u)
	h.stop()
	// The upstream goes away: the switch must not need it.
	up.Stop()

	gated := startMirror(t, dataDir, []string{u}, func(o *gitmirror.Options) { o.Upstreams[0].Gated = []string{"refs/heads/main"} })
	got := lsRemoteGoGit(t, gated.url(u))
	if _, ok := got["refs/heads/main"]; ok {
		t.Errorf("gate switched on: main still advertised at a revision never judged ready: %v", got)
	}
	if got["refs/heads/feature"] != r.Rev("feature") {
		t.Errorf("feature = %s", got["refs/heads/feature"])
	}
	tips, err := gated.m.RefTips(context.Background(), id)
	if err != nil || len(tips) != 3 || tips[1].Object != r.Rev("main") {
		t.Fatalf("upstream tips after the switch = %+v, %v", tips, err)
	}
	if err := gated.m.SetReady(context.Background(), id, "refs/heads/main", r.Rev("main~2")); err != nil {
		t.Fatal(err)
	}
	gated.stop()

	plain := startMirror(t, dataDir, []string{u}, nil)
	got = lsRemoteCLI(t, plain.url(u))
	if got["refs/heads/main"] != r.Rev("main") || got["refs/heads/feature"] != r.Rev("feature") {
		t.Errorf("gate switched off: %v, want the upstream tips again", got)
	}
	if out := git(t, "", "--git-dir="+gitmirror.RepoDir(plain.m, id), "for-each-ref", "refs/ballast/upstream/"); out != "" {
		t.Errorf("hidden upstream refs left behind:\n%s", out)
	}
}

func TestValidateGatedRef(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"refs/heads/main", true},
		{"refs/heads/release/1.2", true},
		{"refs/tags/v1", false},
		{"refs/heads/", false},
		{"main", false},
		{"refs/heads/a..b", false},
		{"refs/heads/a b", false},
		{"refs/heads/x.lock", false},
		{"refs/heads/.hidden", false},
		{"refs/heads/a//b", false},
		{"refs/heads/a*", false},
		{"refs/heads/a\nupdate refs/heads/b", false},
	} {
		_, err := gitmirror.New(gitmirror.Options{DataDir: "/nonexistent", Upstreams: []gitmirror.Upstream{{URL: "https://h/a.git", Gated: []string{tc.name}}}})
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func FuzzGatedRef(f *testing.F) {
	for _, s := range []string{"refs/heads/main", "refs/heads/a/b", "refs/heads/a..b", "refs/heads/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		_, err := gitmirror.New(gitmirror.Options{DataDir: "/nonexistent", Upstreams: []gitmirror.Upstream{{URL: "https://h/a.git", Gated: []string{name}}}})
		if err == nil && (!strings.HasPrefix(name, "refs/heads/") || strings.ContainsAny(name, " \n\t\x00")) {
			t.Fatalf("accepted %q", name)
		}
	})
}

func TestGatedBrokenRepoKeepsAdvertised(t *testing.T) {
	up, r := upstreamWithHistory(t)
	u := up.URL("fleet/apps")
	h := startMirror(t, "", []string{u}, func(o *gitmirror.Options) { o.Upstreams[0].Gated = []string{"refs/heads/main"} })
	h.poll(u)
	ready := r.Rev("main~1")
	if err := h.m.SetReady(context.Background(), u, "refs/heads/main", ready); err != nil {
		t.Fatal(err)
	}
	dir := gitmirror.RepoDir(h.m, u)
	git(t, "", "--git-dir="+dir, "repack", "-a", "-d", "-q")
	h.stop()
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	for _, p := range packs {
		if err := os.Truncate(p, 100); err != nil {
			t.Fatal(err)
		}
	}
	h.opts.Upstreams[0].PollInterval = 200 * time.Millisecond
	h.restart()
	waitFor(t, "re-clone of the broken repository", 30*time.Second, func() bool {
		s, _ := h.m.Repo(u)
		return s.Ready && s.LastError == "" && s.LastSuccess != nil
	})
	if got := lsRemoteGoGit(t, h.url(u))["refs/heads/main"]; got != ready {
		t.Errorf("after re-clone: main = %q, want the ready %s", got, ready)
	}
}
