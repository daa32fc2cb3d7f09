package gitmirror

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// TestConcurrencyLimit: with every serving slot taken, a request waits up
// to the request timeout and then gets 503 with Retry-After, rather than
// starting one more git process.
func TestConcurrencyLimit(t *testing.T) {
	up := gitserver.New(t)
	up.CreateRepo(t, "a/b").CommitN("main", 1)
	m, err := New(Options{
		DataDir:               t.TempDir(),
		Upstreams:             []Upstream{{URL: up.URL("a/b"), PollInterval: time.Hour}},
		MaxConcurrentRequests: 1,
		RequestTimeout:        300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(context.Background(), up.URL("a/b")); err != nil {
		t.Fatal(err)
	}
	path := "/git/" + strings.TrimSuffix(strings.TrimPrefix(up.URL("a/b"), "http://"), ".git") + ".git/info/refs?service=git-upload-pack"
	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		m.GitHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	if w := serve(); w.Code != http.StatusOK || !strings.HasPrefix(w.Body.String(), "001e# service=git-upload-pack\n0000") {
		t.Fatalf("free slot: %d %.60q", w.Code, w.Body.String())
	}
	m.sem <- struct{}{} // the only slot, busy
	start := time.Now()
	w := serve()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("busy mirror: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("gave up after %v, before the request timeout", waited)
	}
	<-m.sem
	if w := serve(); w.Code != http.StatusOK {
		t.Errorf("slot freed: %d", w.Code)
	}
}
