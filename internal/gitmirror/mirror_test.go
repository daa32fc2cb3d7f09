package gitmirror_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	gogitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// upstreamWithHistory makes an upstream repo "fleet/apps" with a few commits
// on main, a branch and a tag.
func upstreamWithHistory(t testing.TB) (*gitserver.Server, *gitserver.Repo) {
	t.Helper()
	up := gitserver.New(t)
	r := up.CreateRepo(t, "fleet/apps")
	r.CommitN("main", 3)
	r.Commit("feature", map[string]string{"feature.txt": "x\n"})
	r.Tag("v1.0.0", r.Rev("main~1"))
	return up, r
}

func TestCloneProtocols(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	// Clients are served from the local copy only: not one request upstream.
	up.ResetStats()
	defer func() {
		if n := up.Stats().Requests; n != 0 {
			t.Errorf("clones through the mirror made %d upstream requests", n)
		}
	}()
	for _, v := range []string{"0", "1", "2"} {
		t.Run("v"+v, func(t *testing.T) {
			dst := filepath.Join(tempDir(t), "c")
			git(t, "", "-c", "protocol.version="+v, "clone", "--quiet", h.url(up.URL("fleet/apps")), dst)
			if got, want := git(t, dst, "rev-parse", "HEAD"), r.Rev("main"); got != want {
				t.Errorf("HEAD %s, want %s", got, want)
			}
			if got := git(t, dst, "symbolic-ref", "HEAD"); got != "refs/heads/main" {
				t.Errorf("checked out %s, want refs/heads/main", got)
			}
			if got, want := git(t, dst, "rev-parse", "origin/feature"), r.Rev("feature"); got != want {
				t.Errorf("origin/feature %s, want %s", got, want)
			}
			if got, want := git(t, dst, "rev-parse", "v1.0.0"), r.Rev("main~1"); got != want {
				t.Errorf("tag v1.0.0 %s, want %s", got, want)
			}
		})
	}
}

func TestLsRemoteMatchesUpstream(t *testing.T) {
	up, r := upstreamWithHistory(t)
	r.SetHEAD("feature")
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	for _, v := range []string{"0", "2"} {
		got := git(t, "", "-c", "protocol.version="+v, "ls-remote", "--symref", h.url(up.URL("fleet/apps")))
		want := git(t, "", "-c", "protocol.version="+v, "ls-remote", "--symref", up.URL("fleet/apps"))
		if got != want {
			t.Errorf("protocol v%s: mirror ls-remote\n%s\nupstream\n%s", v, got, want)
		}
	}
}

func TestGoGitLsRemote(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	// As Argo CD resolves branches: go-git, protocol v0, in memory.
	rem := gogit.NewRemote(memory.NewStorage(), &gogitconfig.RemoteConfig{Name: "origin", URLs: []string{h.url(up.URL("fleet/apps"))}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	refs, err := rem.ListContext(ctx, &gogit.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ref := range refs {
		if ref.Type() == plumbing.SymbolicReference {
			got[ref.Name().String()] = "-> " + ref.Target().String()
		} else {
			got[ref.Name().String()] = ref.Hash().String()
		}
	}
	want := map[string]string{
		"HEAD":               "-> refs/heads/main",
		"refs/heads/main":    r.Rev("main"),
		"refs/heads/feature": r.Rev("feature"),
		"refs/tags/v1.0.0":   r.Rev("main~1"),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "refs/ballast/") {
			t.Errorf("hidden ref %s advertised", k)
		}
	}
}

func TestFetchAfterPoll(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	dst := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), dst)

	events := h.m.Subscribe(t.Context())
	next := r.Commit("main", map[string]string{"new.txt": "new\n"})
	h.poll(up.URL("fleet/apps"))
	select {
	case ev := <-events:
		if ev.Repo != strings.TrimSuffix(strings.TrimPrefix(up.URL("fleet/apps"), "http://"), ".git") {
			t.Errorf("event for %q", ev.Repo)
		}
		found := false
		for _, ref := range ev.Refs {
			found = found || (ref.Name == "refs/heads/main" && ref.Commit == next)
		}
		if !found {
			t.Errorf("event refs %v lack main=%s", ev.Refs, next)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no RefsChanged event after a poll that fetched")
	}
	for _, v := range []string{"0", "2"} {
		git(t, dst, "-c", "protocol.version="+v, "fetch", "--quiet", "origin")
		if got := git(t, dst, "rev-parse", "origin/main"); got != next {
			t.Errorf("v%s: origin/main %s after fetch, want %s", v, got, next)
		}
	}
}

func TestShallowFilterAndFetchBySHA(t *testing.T) {
	up, r := upstreamWithHistory(t)
	old := r.Rev("main~2")
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	for _, v := range []string{"0", "2"} {
		t.Run("v"+v, func(t *testing.T) {
			pv := "protocol.version=" + v
			dst := filepath.Join(tempDir(t), "shallow")
			git(t, "", "-c", pv, "clone", "--quiet", "--depth", "1", h.url(up.URL("fleet/apps")), dst)
			if n := git(t, dst, "rev-list", "--count", "HEAD"); n != "1" {
				t.Errorf("depth 1 clone has %s commits", n)
			}
			git(t, dst, "-c", pv, "fetch", "--quiet", "--depth", "1", "origin", old)
			if typ := git(t, dst, "cat-file", "-t", old); typ != "commit" {
				t.Errorf("fetch by SHA %s: %s", old, typ)
			}
			part := filepath.Join(tempDir(t), "partial")
			git(t, "", "-c", pv, "clone", "--quiet", "--filter=blob:none", "--no-checkout", h.url(up.URL("fleet/apps")), part)
			if got := git(t, part, "config", "remote.origin.promisor"); got != "true" {
				t.Errorf("partial clone not a promisor remote: %q", got)
			}
		})
	}
}

func TestArgoCDSequence(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	target := r.Rev("main~1")
	for _, tc := range []struct {
		name  string
		fetch []string
	}{
		{"full", []string{"fetch", "origin", "--tags", "--force", "--prune"}},
		{"depth", []string{"fetch", "origin", target, "--depth", "1", "--force", "--prune"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tempDir(t)
			git(t, dir, "init", "--quiet")
			git(t, dir, "remote", "add", "origin", h.url(up.URL("fleet/apps")))
			if _, err := gitErr(t, dir, "cat-file", "-t", target); err == nil {
				t.Fatal("commit present before fetch")
			}
			git(t, dir, append([]string{"-c", "credential.helper="}, tc.fetch...)...)
			git(t, dir, "checkout", "--force", target)
			git(t, dir, "clean", "-ffdx")
			if got := git(t, dir, "rev-parse", "HEAD"); got != target {
				t.Errorf("HEAD %s, want %s", got, target)
			}
		})
	}
}

func TestUpstreamDownServesAndCatchesUp(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.Upstreams[0].PollInterval = 200 * time.Millisecond
		o.RetryMin, o.RetryMax = 100*time.Millisecond, 300*time.Millisecond
	})
	waitFor(t, "first clone", 30*time.Second, func() bool { s, _ := h.m.Repo(up.URL("fleet/apps")); return s.Ready })
	up.Stop()
	waitFor(t, "a failed poll", 30*time.Second, func() bool {
		s, _ := h.m.Repo(up.URL("fleet/apps"))
		return s.LastError != ""
	})
	// Offline: clones and fetches of the mirror still work.
	dst := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), dst)
	git(t, dst, "fetch", "--quiet", "origin", "--tags", "--force", "--prune")
	s, _ := h.m.Repo(up.URL("fleet/apps"))
	if s.ConsecutiveFailures == 0 || s.LastSuccess == nil || !s.Ready {
		t.Errorf("status while offline: %+v", s)
	}
	next := r.Commit("main", map[string]string{"after-outage.txt": "x\n"})
	up.Start(t)
	waitFor(t, "catch-up after the upstream returned", 30*time.Second, func() bool {
		s, _ := h.m.Repo(up.URL("fleet/apps"))
		for _, ref := range s.Refs {
			if ref.Name == "refs/heads/main" && ref.Commit == next {
				return s.LastError == ""
			}
		}
		return false
	})
	git(t, dst, "fetch", "--quiet", "origin")
	if got := git(t, dst, "rev-parse", "origin/main"); got != next {
		t.Errorf("origin/main %s, want %s", got, next)
	}
	if n := strings.Count(h.logs.String(), "upstream fetch failing"); n != 1 {
		t.Errorf("outage logged %d times at warn level, want once:\n%s", n, h.logs)
	}
}

func TestPullThroughFirstClone(t *testing.T) {
	up, r := upstreamWithHistory(t)
	up.Stop()
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		// Only a client's request can make the mirror try again soon.
		o.RetryMin, o.RetryMax = time.Hour, time.Hour
	})
	waitFor(t, "first (failing) attempt", 30*time.Second, func() bool {
		s, _ := h.m.Repo(up.URL("fleet/apps"))
		return s.LastError != ""
	})
	up.Start(t)
	dst := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), dst)
	if got := git(t, dst, "rev-parse", "HEAD"); got != r.Rev("main") {
		t.Errorf("HEAD %s, want %s", got, r.Rev("main"))
	}
}

func TestPullThroughTimesOut(t *testing.T) {
	up, _ := upstreamWithHistory(t)
	up.Stop()
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.CloneWait = 300 * time.Millisecond
		o.RetryMin, o.RetryMax = time.Hour, time.Hour
	})
	resp, err := http.Get(h.url(up.URL("fleet/apps")) + "/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("never-fetched repo with upstream down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestForcePushAndDeletionKeepOldTips(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	deployed := r.Rev("main")
	deployedParent := r.Rev("main~1")
	featureTip := r.Rev("feature")
	// A fast-forward first: no keep ref needed for it.
	ff := r.Commit("main", map[string]string{"ff.txt": "1\n"})
	h.poll(up.URL("fleet/apps"))
	// Then history rewritten, a tag moved and a branch deleted.
	oldTag := r.Rev("v1.0.0")
	r.ForcePush("main", r.Commit("rewrite", map[string]string{"only.txt": "rewritten\n"}))
	r.Tag("v1.0.0", r.Rev("main"))
	r.DeleteBranch("rewrite")
	r.DeleteBranch("feature")
	h.poll(up.URL("fleet/apps"))

	dir := RepoDirOf(t, h, up.URL("fleet/apps"))
	kept := git(t, "", "--git-dir="+dir, "for-each-ref", "--format=%(objectname)", "refs/ballast/keep/")
	for _, sha := range []string{ff, featureTip, oldTag} {
		if !strings.Contains(kept, sha) {
			t.Errorf("old tip %s not kept; keep refs:\n%s", sha, kept)
		}
	}
	if strings.Contains(kept, deployed) {
		t.Errorf("fast-forwarded tip %s kept needlessly", deployed)
	}
	ls := git(t, "", "ls-remote", h.url(up.URL("fleet/apps")))
	if strings.Contains(ls, "refs/ballast") || strings.Contains(ls, "feature") {
		t.Errorf("ls-remote shows hidden or deleted refs:\n%s", ls)
	}
	// gc must not drop them.
	git(t, "", "--git-dir="+dir, "gc", "--prune=now", "--quiet")
	for _, v := range []string{"0", "2"} {
		for _, sha := range []string{ff, deployed, deployedParent, featureTip} {
			c := tempDir(t)
			git(t, c, "init", "--quiet")
			git(t, c, "remote", "add", "origin", h.url(up.URL("fleet/apps")))
			git(t, c, "-c", "protocol.version="+v, "fetch", "--quiet", "origin", sha, "--depth", "1", "--force", "--prune")
			git(t, c, "checkout", "--quiet", "--force", sha)
		}
	}
}

func TestRefTipsHasCommitFirstParents(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	ctx := t.Context()
	id := strings.TrimSuffix(strings.TrimPrefix(up.URL("fleet/apps"), "http://"), ".git")

	tips, err := h.m.RefTips(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tips) != 3 || tips[0].Name != "refs/heads/feature" || tips[1].Commit != r.Rev("main") || tips[2].Name != "refs/tags/v1.0.0" {
		t.Errorf("RefTips = %+v", tips)
	}
	for _, tc := range []struct {
		sha  string
		want bool
	}{
		{r.Rev("main~2"), true},
		{strings.ToUpper(r.Rev("main")), true},
		{r.Rev("main^{tree}"), false},
		{strings.Repeat("0", 40), false},
	} {
		got, err := h.m.HasCommit(ctx, up.URL("fleet/apps"), tc.sha)
		if err != nil || got != tc.want {
			t.Errorf("HasCommit(%s) = %v, %v; want %v", tc.sha, got, err, tc.want)
		}
	}
	if _, err := h.m.HasCommit(ctx, id, "--all"); err == nil {
		t.Error("HasCommit accepted an option as a SHA")
	}
	// MissingCommits answers the same for all of them at once, in order.
	var all, want []string
	for _, sha := range []string{r.Rev("main~2"), strings.Repeat("0", 40), strings.ToUpper(r.Rev("main")), r.Rev("main^{tree}"), r.Rev("main~2")} {
		all = append(all, sha)
		if held, err := h.m.HasCommit(ctx, id, sha); err != nil {
			t.Fatal(err)
		} else if !held {
			want = append(want, strings.ToLower(sha))
		}
	}
	got, err := h.m.MissingCommits(ctx, up.URL("fleet/apps"), all)
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("MissingCommits = %v, %v; want %v", got, err, want)
	}
	if got, err := h.m.MissingCommits(ctx, id, nil); err != nil || len(got) != 0 {
		t.Errorf("MissingCommits of none = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"--all"}, {r.Rev("main"), "main"}} {
		if _, err := h.m.MissingCommits(ctx, id, bad); err == nil {
			t.Errorf("MissingCommits(%q) accepted a name that is not a full hex SHA", bad)
		}
	}
	if _, err := h.m.MissingCommits(ctx, "example.com/not/configured", all); !gitmirror.IsUnknownRepo(err) {
		t.Errorf("MissingCommits on an unconfigured repo: %v", err)
	}
	if _, err := h.m.HasCommit(ctx, "example.com/not/configured", r.Rev("main")); !gitmirror.IsUnknownRepo(err) {
		t.Errorf("HasCommit on an unconfigured repo: %v", err)
	}
	fp, err := h.m.FirstParents(ctx, id, r.Rev("main"), 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{r.Rev("main"), r.Rev("main~1"), r.Rev("main~2")}; strings.Join(fp, ",") != strings.Join(want, ",") {
		t.Errorf("FirstParents = %v, want %v", fp, want)
	}
	if fp, _ := h.m.FirstParents(ctx, id, r.Rev("main"), 1); len(fp) != 2 {
		t.Errorf("FirstParents n=1 = %v", fp)
	}
}

func TestAPI(t *testing.T) {
	up, r := upstreamWithHistory(t)
	other := up.CreateRepo(t, "fleet/never")
	_ = other
	up2 := gitserver.New(t)
	up2.Stop()
	h := startMirror(t, "", []string{up.URL("fleet/apps"), up2.URL("down/repo")}, nil)
	h.poll(up.URL("fleet/apps"))
	id := strings.TrimSuffix(strings.TrimPrefix(up.URL("fleet/apps"), "http://"), ".git")

	resp, err := http.Get(h.srv.URL + "/api/v1/repos")
	if err != nil {
		t.Fatal(err)
	}
	var repos []gitmirror.RepoStatus
	if err := json.NewDecoder(resp.Body).Decode(&repos); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(repos) != 2 || repos[0].ID != id || !repos[0].Ready || repos[0].LastSuccess == nil || len(repos[0].Refs) != 3 ||
		repos[0].URL != up.URL("fleet/apps") || repos[0].MirrorPath != "/git/"+id+".git" {
		t.Errorf("repos[0] = %+v", repos[0])
	}
	waitFor(t, "failed first attempt of the down repo", 30*time.Second, func() bool {
		s, _ := h.m.Repo(up2.URL("down/repo"))
		return s.LastError != ""
	})
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/v1/repos/" + id + "/commits/" + r.Rev("main~1"), 200},
		{"/api/v1/repos/" + id + ".git/commits/" + r.Rev("main~1"), 200},
		{"/api/v1/repos/" + id + "/commits/" + strings.Repeat("a", 40), 404},
		{"/api/v1/repos/" + id + "/commits/main", 400},
		{"/api/v1/repos/example.com/x/commits/" + r.Rev("main"), 404},
		{"/api/v1/repos/" + strings.TrimPrefix(up2.URL("down/repo"), "http://")[:len(up2.Addr())] + "/down/repo/commits/" + r.Rev("main"), 404},
		{"/api/v1/repos/../etc/commits/" + r.Rev("main"), 400},
		{"/api/v1/repos/" + id, 200},
	} {
		resp, err := http.Get(h.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d %v, want %d", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}

func TestMetrics(t *testing.T) {
	up, _ := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	git(t, "", "ls-remote", h.url(up.URL("fleet/apps")))
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"ballast_git_fetch_attempts_total", "ballast_git_fetch_duration_seconds",
		"ballast_git_last_fetch_success_age_seconds", "ballast_git_served_bytes_total",
		"ballast_git_requests_in_flight",
	} {
		if !got[name] {
			t.Errorf("metric %s missing (have %v)", name, got)
		}
	}
}

// RepoDirOf is where the harness's mirror keeps upstream's repository.
func RepoDirOf(t *testing.T, h *harness, upstream string) string {
	t.Helper()
	return gitmirror.RepoDir(h.m, upstream)
}

func TestHeadFollowsUpstream(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil)
	h.poll(up.URL("fleet/apps"))
	head := func() string {
		return git(t, "", "ls-remote", "--symref", h.url(up.URL("fleet/apps")), "HEAD")
	}
	// A new default branch comes with a new branch: seen at the next poll.
	r.Commit("trunk", map[string]string{"t.txt": "t\n"})
	r.SetHEAD("trunk")
	h.poll(up.URL("fleet/apps"))
	if got := head(); !strings.HasPrefix(got, "ref: refs/heads/trunk\tHEAD") {
		t.Errorf("after new default branch: %q", got)
	}
	s, _ := h.m.Repo(up.URL("fleet/apps"))
	if s.Head != "refs/heads/trunk" {
		t.Errorf("status head %q", s.Head)
	}
}

func TestHeadCheckInterval(t *testing.T) {
	up, r := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) { o.HeadCheckInterval = time.Nanosecond })
	h.poll(up.URL("fleet/apps"))
	// The default branch switches between existing branches: only the
	// periodic HEAD check sees it.
	r.SetHEAD("feature")
	h.poll(up.URL("fleet/apps"))
	if got := git(t, "", "ls-remote", "--symref", h.url(up.URL("fleet/apps")), "HEAD"); !strings.HasPrefix(got, "ref: refs/heads/feature\tHEAD") {
		t.Errorf("HEAD after switch: %q", got)
	}
}
