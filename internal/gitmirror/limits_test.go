package gitmirror

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// TestDepRefRouteConcurrencyLimit: the anonymous ref lookup runs git
// processes too; with every serving slot taken it answers 503 with
// Retry-After after the request timeout instead of starting more.
func TestDepRefRouteConcurrencyLimit(t *testing.T) {
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
	serve := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		m.GitDepsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/gitdeps/ref?repo="+up.URL("a/b")+"&ref=main", nil))
		return w
	}
	if w := serve(); w.Code != http.StatusOK {
		t.Fatalf("free slot: %d %s", w.Code, w.Body.String())
	}
	m.sem <- struct{}{} // the only slot, busy
	if w := serve(); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("busy mirror: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	<-m.sem
	if w := serve(); w.Code != http.StatusOK {
		t.Errorf("slot freed: %d", w.Code)
	}
}

// TestLargeRequestBodySpooled: an upload-pack request over the in-memory
// limit (a long negotiation: thousands of "have" lines) is spooled to disk
// and served like any other; when every spool slot is taken, the next
// large request gets 503 with Retry-After while small ones are still
// served; when every reading slot is taken, every request gets 503.
func TestLargeRequestBodySpooled(t *testing.T) {
	up := gitserver.New(t)
	tip := up.CreateRepo(t, "a/b").CommitN("main", 3)
	m, err := New(Options{
		DataDir:            t.TempDir(),
		Upstreams:          []Upstream{{URL: up.URL("a/b"), PollInterval: time.Hour}},
		MaxSpooledRequests: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(context.Background(), up.URL("a/b")); err != nil {
		t.Fatal(err)
	}
	path := "/git/" + strings.TrimSuffix(strings.TrimPrefix(up.URL("a/b"), "http://"), ".git") + ".git/git-upload-pack"
	request := func(haves int) string {
		var b strings.Builder
		b.WriteString(string(pktLine("want " + tip + " ofs-delta\n")))
		b.WriteString("0000")
		for i := 0; i < haves; i++ {
			b.WriteString(string(pktLine(fmt.Sprintf("have %040x\n", i+1))))
		}
		b.WriteString(string(pktLine("done\n")))
		return b.String()
	}
	serve := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		w := httptest.NewRecorder()
		m.GitHandler().ServeHTTP(w, req)
		return w
	}
	big := request(4000) // about 200 KiB
	if len(big) <= memBodyLimit {
		t.Fatalf("request of %d bytes does not exceed the in-memory limit", len(big))
	}
	w := serve(big)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "PACK") {
		t.Fatalf("spooled request: %d %.80q", w.Code, w.Body.String())
	}
	m.spools <- struct{}{} // the only spool slot, busy
	if w := serve(big); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("large request with no spool slot: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if w := serve(request(10)); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "PACK") {
		t.Errorf("small request while spooling is full: %d", w.Code)
	}
	<-m.spools
	for range cap(m.readers) { // every reading slot held by a stalled client
		m.readers <- struct{}{}
	}
	if w := serve(request(10)); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("small request with every reading slot taken: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	for range cap(m.readers) {
		<-m.readers
	}
	if w := serve(request(10)); w.Code != http.StatusOK {
		t.Errorf("reading slots free again: %d", w.Code)
	}
	left, _ := os.ReadDir(filepath.Join(m.root, ".tmp"))
	if len(left) != 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}
