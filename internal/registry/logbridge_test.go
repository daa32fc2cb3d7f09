package registry_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ballast-dev/ballast/internal/registry"
)

// TestLogsGoToSlog: Distribution's logrus output reaches the slog logger,
// and a 404 is not logged as an error.
func TestLogsGoToSlog(t *testing.T) {
	var buf lockedBuffer
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := registry.New(context.Background(), registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "c"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v2/a/manifests/x", nil))
	if rec.Code != 404 {
		t.Fatalf("status %d", rec.Code)
	}
	out := buf.String()
	if !strings.Contains(out, "lib=distribution") || !strings.Contains(out, `msg="response completed with error"`) {
		t.Fatalf("distribution's request log did not reach slog:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			t.Errorf("normal operation logged above info: %s", l)
		}
	}
}

// lockedBuffer is written by Distribution's background goroutines (the
// upload purger logs through the process-wide bridge) while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestAbortedUploadIsNotAnError: an upload whose body ends early (the
// writer's own download was cut) is the writer's to report and retry.
func TestAbortedUploadIsNotAnError(t *testing.T) {
	var buf lockedBuffer
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := registry.New(context.Background(), registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "c"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := &http.Client{Transport: r.Transport()}
	resp, err := c.Post("http://edge.invalid/v2/docker.io/library/a/blobs/uploads/", "", nil)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("start upload: %v %v", resp, err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	q.Set("digest", "sha256:"+strings.Repeat("ab", 32))
	loc.RawQuery = q.Encode()
	req, _ := http.NewRequest("PUT", "http://edge.invalid"+loc.RequestURI(), io.MultiReader(strings.NewReader("partial"), failingReader{io.ErrUnexpectedEOF}))
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("aborted upload accepted: %d", resp.StatusCode)
		}
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("aborted upload logged as an error: %s", l)
		}
	}
}

// TestLogsOfTwoRegistries: with two registries in one process (the demo's
// cloud and edge), what Distribution logs for a request reaches the logger
// of the registry that served it, not that of the one started last.
func TestLogsOfTwoRegistries(t *testing.T) {
	var first, second lockedBuffer
	open := func(buf *lockedBuffer) *registry.Registry {
		dir := t.TempDir()
		log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		r, err := registry.New(context.Background(), registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "c"), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a := open(&first)
	b := open(&second)
	for _, r := range []*registry.Registry{a, b} {
		rec := httptest.NewRecorder()
		name := "first"
		if r == b {
			name = "second"
		}
		r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v2/"+name+"/manifests/x", nil))
		if rec.Code != 404 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	for _, c := range []struct {
		buf        *lockedBuffer
		own, other string
	}{{&first, "vars.name=first", "vars.name=second"}, {&second, "vars.name=second", "vars.name=first"}} {
		out := c.buf.String()
		if !strings.Contains(out, c.own) {
			t.Errorf("the request's log did not reach its registry's logger:\n%s", out)
		}
		if strings.Contains(out, c.other) {
			t.Errorf("the other registry's request was logged here:\n%s", out)
		}
	}
}
