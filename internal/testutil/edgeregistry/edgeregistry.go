// Package edgeregistry starts the embedded edge registry
// (internal/registry) on a free 127.0.0.1 port for tests of other packages.
package edgeregistry

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/registry"
)

// Options configure Start; every field is optional.
type Options struct {
	// DataDir is the data directory; default a fresh t.TempDir(). Pass the
	// DataDir of an earlier Server to restart on the same content.
	DataDir string
	// CredentialsFile defaults to DataDir/registry-credentials.
	CredentialsFile string
}

// Server is a running edge registry.
type Server struct {
	*registry.Registry
	// Host is "127.0.0.1:port", for image references (Host + "/docker.io/library/x:1").
	Host string
	// URL is "http://127.0.0.1:port".
	URL string
	// DataDir is the data directory the registry stores under.
	DataDir string

	stop func()
}

// Start starts a registry and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.CredentialsFile == "" {
		opts.CredentialsFile = filepath.Join(opts.DataDir, "registry-credentials")
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.New(ctx, registry.Options{DataDir: opts.DataDir, CredentialsFile: opts.CredentialsFile})
	if err != nil {
		cancel()
		t.Fatalf("start edge registry: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		reg.Close()
		t.Fatalf("edge registry listener: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Serve(ctx, ln) }()
	s := &Server{
		Registry: reg,
		Host:     ln.Addr().String(),
		URL:      "http://" + ln.Addr().String(),
		DataDir:  opts.DataDir,
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge registry: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("edge registry did not stop within 15s")
		}
		reg.Close()
	}
	t.Cleanup(s.stop)
	waitReady(t, s.URL)
	return s
}

// Stop stops the registry before the test ends (e.g. to restart it on the
// same DataDir). Calling it twice is harmless.
func (s *Server) Stop() { s.stop() }

func waitReady(t testing.TB, url string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(url + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge registry at %s not ready: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
