package edge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

func TestDaemonServesMirrorAPIAndMetrics(t *testing.T) {
	up := gitserver.New(t)
	r := up.CreateRepo(t, "fleet/apps")
	sha := r.CommitN("main", 2)
	cfg, err := config.Parse([]byte(`
dataDir: ` + t.TempDir() + `
listen: {http: "127.0.0.1:0", registry: "127.0.0.1:0"}
repositories:
  - url: ` + up.URL("fleet/apps") + `
    pollInterval: 1h
`))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	d, err := edge.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Started():
	case err := <-done:
		t.Fatalf("daemon stopped: %v", err)
	}
	base := "http://" + d.Addr("http").String()
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(up.URL("fleet/apps"), "http://"), ".git")
	c := filepath.Join(t.TempDir(), "c")
	gitserver.Git(t, "", "clone", "--quiet", base+"/git/"+id+".git", c)
	if got := gitserver.Git(t, c, "rev-parse", "HEAD"); got != sha {
		t.Errorf("cloned HEAD %s, want %s", got, sha)
	}
	for _, tc := range []struct {
		path     string
		want     int
		contains string
	}{
		{"/healthz", 200, "ok"},
		{"/metrics", 200, "ballast_git_fetch_attempts_total"},
		{"/metrics", 200, "go_goroutines"},
		{"/api/v1/repos", 200, sha},
		{"/api/v1/repos/" + id + "/commits/" + sha, 200, sha},
		{"/api/v1/repos/" + id + "/commits/" + strings.Repeat("0", 40), 404, "not present"},
		{"/git/../api/v1/repos", 400, ""},
		{"/api/v1/repos/../../metrics", 400, ""},
		{"/nothing-here", 404, ""},
	} {
		code, body := get(tc.path)
		if code != tc.want || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: %d (want %d), body %.200q lacks %q", tc.path, code, tc.want, body, tc.contains)
		}
	}
	if !strings.Contains(logs.String(), "path=/api/v1/repos status=200") {
		t.Errorf("no access log line for /api/v1/repos:\n%s", logs.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("clean shutdown returned %v", err)
		}
	case <-time.After(edge.ShutdownTimeout + 5*time.Second):
		t.Fatal("daemon did not stop")
	}
}

func TestDaemonListenError(t *testing.T) {
	gitserver.RequireGit(t)
	up := gitserver.New(t)
	cfg, err := config.Parse([]byte("dataDir: " + t.TempDir() + "\nlisten: {http: \"" + up.Addr() + "\", registry: \"127.0.0.1:1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := edge.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen http") {
		t.Errorf("Run on a busy port: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
