package gitmirror_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

func TestBadRequestsChangeNothing(t *testing.T) {
	up, _ := upstreamWithHistory(t)
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) { o.MaxRequestBody = 1 << 10 })
	h.poll(up.URL("fleet/apps"))
	before := treeSnapshot(t, h.dataDir)
	repo := strings.TrimPrefix(h.url(up.URL("fleet/apps")), h.srv.URL)
	host := up.Addr()

	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	const pack = "application/x-git-upload-pack-request"
	for _, tc := range []struct {
		name, method, path, ctype, enc string
		body                           []byte
		want                           int
	}{
		{"traversal in repo path", "GET", "/git/" + host + "/../../etc/passwd.git/info/refs?service=git-upload-pack", "", "", nil, 400},
		{"encoded traversal", "GET", "/git/" + host + "/%2e%2e/%2e%2e/fleet/apps.git/info/refs?service=git-upload-pack", "", "", nil, 400},
		{"traversal outside the git tree", "GET", "/git/../../etc/passwd", "", "", nil, 404},
		{"dot segment", "GET", "/git/" + host + "/./fleet/apps.git/info/refs?service=git-upload-pack", "", "", nil, 400},
		{"empty segment", "GET", "/git/" + host + "//fleet/apps.git/info/refs?service=git-upload-pack", "", "", nil, 400},
		{"unknown repo", "GET", "/git/example.com/other/repo.git/info/refs?service=git-upload-pack", "", "", nil, 404},
		{"unknown repo on the same host", "GET", "/git/" + host + "/fleet/other.git/info/refs?service=git-upload-pack", "", "", nil, 404},
		{"receive-pack advertisement", "GET", repo + "/info/refs?service=git-receive-pack", "", "", nil, 403},
		{"receive-pack", "POST", repo + "/git-receive-pack", "application/x-git-receive-pack-request", "", []byte("0000"), 403},
		{"dumb HTTP", "GET", repo + "/info/refs", "", "", nil, 400},
		{"dumb HTTP object", "GET", repo + "/objects/info/packs", "", "", nil, 404},
		{"dumb HTTP HEAD file", "GET", repo + "/HEAD", "", "", nil, 404},
		{"upload-pack by GET", "GET", repo + "/git-upload-pack", "", "", nil, 405},
		{"info/refs by POST", "POST", repo + "/info/refs?service=git-upload-pack", pack, "", []byte("0000"), 405},
		{"wrong content type", "POST", repo + "/git-upload-pack", "text/plain", "", []byte("0000"), 415},
		{"oversized body", "POST", repo + "/git-upload-pack", pack, "", bytes.Repeat([]byte("0032want 0000000000000000000000000000000000000000\n"), 100), 413},
		{"gzip bomb", "POST", repo + "/git-upload-pack", pack, "gzip", bomb.Bytes(), 413},
		{"corrupt gzip", "POST", repo + "/git-upload-pack", pack, "gzip", []byte("not gzip at all"), 400},
		{"unknown encoding", "POST", repo + "/git-upload-pack", pack, "br", []byte("0000"), 415},
		{"garbage request", "POST", repo + "/git-upload-pack", pack, "", []byte("zzzz not a pkt-line"), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.srv.URL+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.enc != "" {
				req.Header.Set("Content-Encoding", tc.enc)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				t.Errorf("redirect to %q", resp.Header.Get("Location"))
			}
		})
	}
	// A real push is refused too.
	c := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), c)
	git(t, c, "commit", "--quiet", "--allow-empty", "-m", "push attempt")
	if out, err := gitErr(t, c, "push", "origin", "HEAD:main"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("push through the mirror: err %v, output %s", err, out)
	}
	if after := treeSnapshot(t, h.dataDir); after != before {
		t.Errorf("bad requests changed the data directory:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestFetchKilledMidway kills a real `git fetch` (and its helpers) while it
// downloads a pack from a slow upstream, as a crash or power cut would,
// then restarts the mirror on the same data directory.
func TestFetchKilledMidway(t *testing.T) {
	up, r := upstreamWithHistory(t)
	var pid atomic.Int64
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, nil, func(m *gitmirror.Mirror) {
		gitmirror.SetFetchStartedHook(m, func(p int) { pid.Store(int64(p)) })
	})
	// A branch whose name looks like a temp file must survive the clean-up.
	tmpBranch := r.Commit("tmp_pack_feature", map[string]string{"t.txt": "t\n"})
	h.poll(up.URL("fleet/apps"))
	oldMain := r.Rev("main")
	big := make([]byte, 3<<20) // incompressible
	_, _ = rand.Read(big)
	newMain := r.Commit("main", map[string]string{"big.bin": string(big)})
	up.SetThrottle(256 << 10)

	dir := gitmirror.RepoDir(h.m, up.URL("fleet/apps"))
	pollErr := make(chan error, 1)
	go func() { pollErr <- h.m.Poll(context.Background(), up.URL("fleet/apps")) }()
	waitFor(t, "a pack being received", 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "tmp_pack_*"))
		return len(m) > 0
	})
	if err := syscall.Kill(-int(pid.Load()), syscall.SIGKILL); err != nil {
		t.Fatalf("kill fetch: %v", err)
	}
	if err := <-pollErr; err == nil {
		t.Fatal("poll succeeded although its fetch was killed")
	}
	// What a crash during the ref update would leave as well.
	if err := os.WriteFile(filepath.Join(dir, "refs", "heads", "main.lock"), []byte(newMain+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "packed-refs.lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.restart()
	for _, pat := range []string{"objects/pack/tmp_*", "refs/heads/*.lock", "*.lock"} {
		if m, _ := filepath.Glob(filepath.Join(dir, pat)); len(m) > 0 {
			t.Errorf("after restart, leftovers remain: %v", m)
		}
	}
	git(t, "", "--git-dir="+dir, "fsck", "--connectivity-only", "--no-progress")
	if got := git(t, "", "--git-dir="+dir, "rev-parse", "refs/heads/tmp_pack_feature"); got != tmpBranch {
		t.Errorf("branch tmp_pack_feature = %q after clean-up, want %s", got, tmpBranch)
	}
	if got := git(t, "", "--git-dir="+dir, "rev-parse", "refs/heads/main"); got != oldMain {
		t.Errorf("main after killed fetch = %s, want the old %s", got, oldMain)
	}
	// It serves the old state, then catches up once the link is good.
	c := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), c)
	if got := git(t, c, "rev-parse", "HEAD"); got != oldMain {
		t.Errorf("clone after restart: HEAD %s, want %s", got, oldMain)
	}
	up.SetThrottle(0)
	h.poll(up.URL("fleet/apps"))
	git(t, c, "fetch", "--quiet", "origin")
	if got := git(t, c, "rev-parse", "origin/main"); got != newMain {
		t.Errorf("after catch-up origin/main %s, want %s", got, newMain)
	}
}

func TestBrokenRepoReclonedAside(t *testing.T) {
	up, r := upstreamWithHistory(t)
	urls := []string{up.URL("fleet/apps")}
	h := startMirror(t, "", urls, nil)
	h.poll(up.URL("fleet/apps"))
	dir := gitmirror.RepoDir(h.m, up.URL("fleet/apps"))
	// Something orphaned by a force-push, kept.
	kept := r.Rev("main")
	r.ForcePush("main", r.Rev("main~1"))
	h.poll(up.URL("fleet/apps"))
	git(t, "", "--git-dir="+dir, "repack", "-a", "-d", "-q")
	h.stop()

	// Lose an object the refs need: the check at start must notice.
	tip := r.Rev("feature")
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("no pack to break")
	}
	for _, p := range packs {
		if err := os.Truncate(p, 100); err != nil {
			t.Fatal(err)
		}
	}
	h.opts.Upstreams[0].PollInterval = 200 * time.Millisecond
	h.restart()
	waitFor(t, "re-clone of the broken repository", 30*time.Second, func() bool {
		s, _ := h.m.Repo(up.URL("fleet/apps"))
		return s.Ready && s.LastError == "" && s.LastSuccess != nil
	})
	git(t, "", "--git-dir="+dir, "fsck", "--connectivity-only", "--no-progress")
	c := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), c)
	if got := git(t, c, "rev-parse", "origin/feature"); got != tip {
		t.Errorf("feature after re-clone %s, want %s", got, tip)
	}
	_ = kept // its objects were in the truncated pack: carried over only when intact
	if !strings.Contains(h.logs.String(), "re-cloned aside") {
		t.Errorf("broken repository not reported:\n%s", h.logs)
	}
}

func TestCredentialsNeverLeak(t *testing.T) {
	up, r := upstreamWithHistory(t)
	const secret = "s3cr3t-Pa55"
	up.RequireBasicAuth("robot", secret)
	dir := t.TempDir()
	userFile, passFile := filepath.Join(dir, "user"), filepath.Join(dir, "pass")
	for f, v := range map[string]string{userFile: "robot\n", passFile: secret + "\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.Upstreams[0].UsernameFile, o.Upstreams[0].PasswordFile = userFile, passFile
	})
	h.poll(up.URL("fleet/apps"))
	c := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), c)
	if got := git(t, c, "rev-parse", "HEAD"); got != r.Rev("main") {
		t.Errorf("HEAD %s", got)
	}
	// A wrong password: the failure is reported without any secret.
	if err := os.WriteFile(passFile, []byte("wrong-"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.CommitN("main", 1)
	err := h.m.Poll(context.Background(), up.URL("fleet/apps"))
	if err == nil {
		t.Fatal("poll with a wrong password succeeded")
	}
	s, _ := h.m.Repo(up.URL("fleet/apps"))
	for what, text := range map[string]string{"error": err.Error(), "status": s.LastError, "logs": h.logs.String(),
		"files": treeContents(t, h.dataDir)} {
		for _, leak := range []string{secret, "cm9ib3Q6"} { // base64("robot:") prefix
			if strings.Contains(text, leak) {
				t.Errorf("%s contains a credential (%q)", what, leak)
			}
		}
	}
}

// treeContents concatenates every small file under dir.
func treeContents(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Size() < 1<<20 {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		return nil
	})
	return b.String()
}

func TestUpstreamURLsRefused(t *testing.T) {
	for _, u := range []string{
		"ext::sh -c touch% /tmp/pwned",
		"file:///etc",
		"-uhttp://x/y.git",
		"--upload-pack=touch /tmp/pwned",
		"http://user:pass@example.com/x.git",
		"http://token@example.com/x.git",
		"ssh://git:pass@example.com/x.git",
		"ssh://example.com/x\x1b[2J.git",
		"ftp://example.com/x.git",
		"http://example.com/a.git/b",
		"http://.locks/x.git",
	} {
		if _, err := gitmirror.New(gitmirror.Options{DataDir: t.TempDir(), Upstreams: []gitmirror.Upstream{{URL: u}}}); err == nil {
			t.Errorf("upstream %q accepted", u)
		} else if strings.Contains(err.Error(), "pass") {
			t.Errorf("refusal of %q quotes the password: %v", u, err)
		}
	}
	if _, err := gitmirror.New(gitmirror.Options{DataDir: t.TempDir(), Upstreams: []gitmirror.Upstream{{URL: "ssh://git@example.com/x.git"}}}); err != nil {
		t.Errorf("ssh user name alone refused: %v", err)
	}
	gitserver.RequireGit(t)
}

// TestFirstCloneKilledMidway: a first clone killed mid-way is never served
// and never trusted; the next start removes it and clones again.
func TestFirstCloneKilledMidway(t *testing.T) {
	up, r := upstreamWithHistory(t)
	big := make([]byte, 2<<20)
	_, _ = rand.Read(big)
	r.Commit("main", map[string]string{"big.bin": string(big)})
	up.SetThrottle(256 << 10)
	var pid atomic.Int64
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.RetryMin, o.RetryMax = time.Hour, time.Hour
	}, func(m *gitmirror.Mirror) {
		gitmirror.SetFetchStartedHook(m, func(p int) { pid.Store(int64(p)) })
	})
	tmpDir := filepath.Join(h.dataDir, "git", ".tmp")
	waitFor(t, "a pack being received by the first clone", 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(tmpDir, "*", "objects", "pack", "tmp_pack_*"))
		return len(m) > 0 && pid.Load() != 0
	})
	if err := syscall.Kill(-int(pid.Load()), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed attempt", 30*time.Second, func() bool {
		s, _ := h.m.Repo(up.URL("fleet/apps"))
		return s.LastError != ""
	})
	if s, _ := h.m.Repo(up.URL("fleet/apps")); s.Ready {
		t.Fatal("half a clone is being served")
	}
	up.SetThrottle(0)
	h.restart()
	h.poll(up.URL("fleet/apps"))
	if ents, _ := os.ReadDir(tmpDir); len(ents) != 0 {
		t.Errorf("leftovers in %s: %v", tmpDir, ents)
	}
	c := filepath.Join(tempDir(t), "c")
	git(t, "", "clone", "--quiet", h.url(up.URL("fleet/apps")), c)
	if got := git(t, c, "rev-parse", "HEAD"); got != r.Rev("main") {
		t.Errorf("HEAD %s, want %s", got, r.Rev("main"))
	}
}
