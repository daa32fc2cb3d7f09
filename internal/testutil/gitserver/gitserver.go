// Package gitserver is the test helper for a real upstream git server: bare
// repositories served by the real `git http-backend` through net/http/cgi on
// 127.0.0.1. It can be stopped and started again on the same address (an
// upstream that goes away and comes back), throttled (a slow link), and its
// repositories rewritten (commits, force-pushes, branch deletions).
package gitserver

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server serves every bare repository under Root as http://Addr/<name>.git.
type Server struct {
	Root string
	addr string

	mu       sync.Mutex
	srv      *http.Server
	throttle atomic.Int64 // response bytes per second, 0 = unlimited
	auth     atomic.Pointer[[2]string]

	requests atomic.Int64
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
}

// RequireGit returns the git CLI's path. Without it the test skips, loudly,
// or fails where real components are required (realtest: CI).
func RequireGit(tb testing.TB) string {
	tb.Helper()
	return realtest.LookPath(tb, "git", "apt-get install git; these tests need real git on both sides")
}

// New starts a server on a free loopback port. It stops at test cleanup.
func New(tb testing.TB) *Server {
	tb.Helper()
	RequireGit(tb)
	s := &Server{Root: tb.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	tb.Cleanup(s.Stop)
	return s
}

// URL returns the clone URL of repository name.
func (s *Server) URL(name string) string { return "http://" + s.addr + "/" + name + ".git" }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

func (s *Server) serve(ln net.Listener) {
	git, _ := exec.LookPath("git")
	backend := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Dir:  s.Root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
		InheritEnv: []string{"PATH", "HOME", "TMPDIR"},
		// Clients that hang up (killed fetches) are expected here.
		Logger: log.New(io.Discard, "", 0),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if want := s.auth.Load(); want != nil {
			if u, p, ok := r.BasicAuth(); !ok || u != want[0] || p != want[1] {
				w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		r.Body = &countReader{r: r.Body, n: &s.bytesIn}
		backend.ServeHTTP(&countWriter{ResponseWriter: w, s: s}, r)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every open connection: the upstream is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start serves again on the same address after Stop.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("restart git server on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// RequireBasicAuth makes every request need HTTP basic auth user:pass.
func (s *Server) RequireBasicAuth(user, pass string) { s.auth.Store(&[2]string{user, pass}) }

// SetThrottle limits response bodies to about bytesPerSec (0 = unlimited).
func (s *Server) SetThrottle(bytesPerSec int64) { s.throttle.Store(bytesPerSec) }

// Stats are the server's traffic counters since the last ResetStats.
type Stats struct {
	Requests int64 // HTTP requests (round trips)
	BytesIn  int64 // request body bytes
	BytesOut int64 // response body bytes
}

// Stats returns the traffic counters.
func (s *Server) Stats() Stats {
	return Stats{s.requests.Load(), s.bytesIn.Load(), s.bytesOut.Load()}
}

// ResetStats zeroes the traffic counters.
func (s *Server) ResetStats() { s.requests.Store(0); s.bytesIn.Store(0); s.bytesOut.Store(0) }

type countReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
func (c *countReader) Close() error { return c.r.Close() }

type countWriter struct {
	http.ResponseWriter
	s *Server
}

func (c *countWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p
		rate := c.s.throttle.Load()
		if rate > 0 {
			step := max(rate/20, 1) // ~50 ms worth per write
			if int64(len(chunk)) > step {
				chunk = chunk[:step]
			}
			time.Sleep(time.Duration(float64(len(chunk)) / float64(rate) * float64(time.Second)))
		}
		n, err := c.ResponseWriter.Write(chunk)
		total += n
		c.s.bytesOut.Add(int64(n))
		if err != nil {
			return total, err
		}
		if rate > 0 {
			_ = http.NewResponseController(c.ResponseWriter).Flush()
		}
		p = p[n:]
	}
	return total, nil
}

func (c *countWriter) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

// Repo is one bare repository on the server, changed in place with git
// plumbing (no working tree).
type Repo struct {
	Name string
	Dir  string
	tb   testing.TB
	n    int
}

// CreateRepo makes an empty bare repository name.git whose HEAD is
// refs/heads/main, with shallow and filtered fetches allowed.
func (s *Server) CreateRepo(tb testing.TB, name string) *Repo {
	tb.Helper()
	dir := filepath.Join(s.Root, name+".git")
	r := &Repo{Name: name, Dir: dir, tb: tb}
	Git(tb, "", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	r.Git("config", "uploadpack.allowFilter", "true")
	r.Git("config", "uploadpack.allowAnySHA1InWant", "true")
	r.Git("config", "http.receivepack", "true")
	return r
}

// Git runs git in the repository and returns its trimmed stdout.
func (r *Repo) Git(args ...string) string {
	r.tb.Helper()
	return Git(r.tb, "", append([]string{"--git-dir=" + r.Dir}, args...)...)
}

// Commit adds a commit on branch with the given files (path → content) on
// top of the branch's tree and returns its SHA. A missing branch starts a
// new root commit.
func (r *Repo) Commit(branch string, files map[string]string) string {
	r.tb.Helper()
	r.n++
	parent := r.Git("rev-parse", "--verify", "-q", "refs/heads/"+branch+"^{commit}", "--")
	idx := filepath.Join(r.tb.TempDir(), "index")
	env := []string{"GIT_INDEX_FILE=" + idx}
	if parent != "" {
		gitEnv(r.tb, env, nil, "--git-dir="+r.Dir, "read-tree", parent)
	}
	for path, content := range files {
		blob := gitEnv(r.tb, env, strings.NewReader(content), "--git-dir="+r.Dir, "hash-object", "-w", "--stdin")
		gitEnv(r.tb, env, nil, "--git-dir="+r.Dir, "update-index", "--add", "--cacheinfo", "100644,"+blob+","+path)
	}
	tree := gitEnv(r.tb, env, nil, "--git-dir="+r.Dir, "write-tree")
	args := []string{"--git-dir=" + r.Dir, "commit-tree", tree, "-m", fmt.Sprintf("commit %d on %s", r.n, branch)}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	sha := gitEnv(r.tb, env, nil, args...)
	r.Git("update-ref", "refs/heads/"+branch, sha)
	return sha
}

// Change is what CommitChange writes on top of a branch's tree.
type Change struct {
	Files    map[string]string // path → content (regular files)
	Gitlinks map[string]string // path → commit SHA: submodule entries (mode 160000)
	Remove   []string          // paths removed from the index (files or gitlinks)
}

// CommitChange adds a commit on branch with c applied to the branch's tree
// and returns its SHA. A missing branch starts a new root commit.
func (r *Repo) CommitChange(branch string, c Change) string {
	r.tb.Helper()
	r.n++
	parent := r.Git("rev-parse", "--verify", "-q", "refs/heads/"+branch+"^{commit}", "--")
	idx := filepath.Join(r.tb.TempDir(), "index")
	env := []string{"GIT_INDEX_FILE=" + idx}
	gd := "--git-dir=" + r.Dir
	if parent != "" {
		gitEnv(r.tb, env, nil, gd, "read-tree", parent)
	}
	for _, p := range c.Remove {
		// Mode 0 removes the entry; needs no work tree.
		gitEnv(r.tb, env, strings.NewReader("0 0000000000000000000000000000000000000000\t"+p+"\n"), gd, "update-index", "--index-info")
	}
	for path, content := range c.Files {
		blob := gitEnv(r.tb, env, strings.NewReader(content), gd, "hash-object", "-w", "--stdin")
		gitEnv(r.tb, env, nil, gd, "update-index", "--add", "--cacheinfo", "100644,"+blob+","+path)
	}
	for path, sha := range c.Gitlinks {
		gitEnv(r.tb, env, nil, gd, "update-index", "--add", "--cacheinfo", "160000,"+sha+","+path)
	}
	tree := gitEnv(r.tb, env, nil, gd, "write-tree")
	args := []string{gd, "commit-tree", tree, "-m", fmt.Sprintf("commit %d on %s", r.n, branch)}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	sha := gitEnv(r.tb, env, nil, args...)
	r.Git("update-ref", "refs/heads/"+branch, sha)
	return sha
}

// CommitN adds n commits on branch, each changing one file, and returns
// the last SHA.
func (r *Repo) CommitN(branch string, n int) string {
	r.tb.Helper()
	var sha string
	for i := 0; i < n; i++ {
		sha = r.Commit(branch, map[string]string{fmt.Sprintf("f%d.txt", r.n%7): fmt.Sprintf("content %d\n", r.n)})
	}
	return sha
}

// ForcePush points branch at sha, whatever it pointed at before.
func (r *Repo) ForcePush(branch, sha string) {
	r.tb.Helper()
	r.Git("update-ref", "refs/heads/"+branch, sha)
}

// DeleteBranch removes branch.
func (r *Repo) DeleteBranch(branch string) {
	r.tb.Helper()
	r.Git("update-ref", "-d", "refs/heads/"+branch)
}

// Tag creates or moves the lightweight tag name to sha.
func (r *Repo) Tag(name, sha string) { r.tb.Helper(); r.Git("update-ref", "refs/tags/"+name, sha) }

// SetHEAD makes branch the default branch.
func (r *Repo) SetHEAD(branch string) {
	r.tb.Helper()
	r.Git("symbolic-ref", "HEAD", "refs/heads/"+branch)
}

// Rev resolves a revision to its SHA.
func (r *Repo) Rev(rev string) string { r.tb.Helper(); return r.Git("rev-parse", "--verify", rev) }

// Import feeds a `git fast-import` stream into the repository (fast bulk
// history for benchmarks).
func (r *Repo) Import(stream io.Reader) {
	r.tb.Helper()
	gitEnv(r.tb, nil, stream, "--git-dir="+r.Dir, "fast-import", "--quiet")
}

// Git runs git in dir ("" = current) with a test identity and a clean
// configuration, failing the test on error, and returns trimmed stdout.
// A failing `rev-parse -q --verify` returns "".
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	return gitEnv(tb, nil, nil, args...)
}

// Env is the environment test git commands run with: no user or system
// config, a fixed identity.
func Env() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=ballast test", "GIT_AUTHOR_EMAIL=test@ballast.invalid",
		"GIT_COMMITTER_NAME=ballast test", "GIT_COMMITTER_EMAIL=test@ballast.invalid")
}

func gitEnv(tb testing.TB, env []string, stdin io.Reader, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(Env(), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if len(args) > 2 && args[1] == "rev-parse" && strings.Contains(strings.Join(args, " "), "-q") {
			return ""
		}
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}
