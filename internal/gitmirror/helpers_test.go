package gitmirror_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// harness is a mirror of some upstream repositories, served by an httptest
// server with the routes the edge daemon uses.
type harness struct {
	t       testing.TB
	dataDir string
	opts    gitmirror.Options
	m       *gitmirror.Mirror
	srv     *httptest.Server
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	logs    *lockedWriter
}

// startMirror runs a mirror of the given upstream URLs. Polls are driven by
// the test (Poll) unless mutate shortens PollInterval.
func startMirror(t testing.TB, dataDir string, urls []string, mutate func(*gitmirror.Options), setup ...func(*gitmirror.Mirror)) *harness {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	h := &harness{t: t, dataDir: dataDir, logs: &lockedWriter{w: &bytes.Buffer{}}, reg: prometheus.NewRegistry()}
	opts := gitmirror.Options{
		DataDir:   dataDir,
		Logger:    slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:   h.reg,
		CloneWait: 20 * time.Second,
	}
	for _, u := range urls {
		opts.Upstreams = append(opts.Upstreams, gitmirror.Upstream{URL: u, PollInterval: time.Hour})
	}
	if mutate != nil {
		mutate(&opts)
	}
	h.opts = opts
	m, err := gitmirror.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	for _, f := range setup {
		f(m)
	}
	h.start()
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.m.Run(ctx) }()
	// Not http.ServeMux: it answers unclean paths ("..") with redirects,
	// and the mirror must see them to refuse them.
	gitH, apiH := h.m.GitHandler(), h.m.APIHandler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/git/"):
			gitH.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/api/v1/repos"):
			apiH.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	h.t.Cleanup(h.stop)
	select {
	case <-h.m.Started():
	case err := <-h.done:
		h.t.Fatalf("mirror stopped at start: %v", err)
	case <-time.After(time.Minute):
		h.t.Fatal("mirror did not start")
	}
}

// stop shuts the mirror down and waits for it (idempotent).
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.srv.Close()
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.t.Error("mirror did not stop")
	}
}

// restart stops the mirror and starts a new one on the same data directory.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.reg = prometheus.NewRegistry()
	h.opts.Metrics = h.reg
	m, err := gitmirror.New(h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.m = m
	h.start()
}

func (h *harness) url(upstream string) string {
	id, err := imageref.RepoID(upstream)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.srv.URL + "/git/" + id + ".git"
}

func (h *harness) poll(upstream string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.m.Poll(ctx, upstream); err != nil {
		h.t.Fatalf("poll %s: %v\nlogs:\n%s", upstream, err, h.logs)
	}
}

// git runs a client git command (fails the test on error).
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gitserver.Git(t, dir, args...)
}

// gitErr runs a client git command and returns its error and output.
func gitErr(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = gitserver.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// treeSnapshot lists every file under dir with its size and mtime, to
// prove that a request changed nothing on disk.
func treeSnapshot(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			lines = append(lines, rel+"/")
		} else {
			lines = append(lines, rel+" "+info.ModTime().String()+" "+strconv.FormatInt(info.Size(), 10))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// lockedWriter serialises log writes from the mirror's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// waitFor polls cond every 50ms until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp(t.TempDir(), "client-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
