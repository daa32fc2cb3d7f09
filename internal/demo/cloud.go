package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/registry"
)

// gitServer serves the bare repositories under root read-only with the real
// `git http-backend` through net/http/cgi: the upstream git host.
type gitServer struct {
	root string
	addr string
	srv  *http.Server
	done chan struct{}
	once sync.Once
}

func startGitServer(root string) (*gitServer, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("the git CLI is needed (apt-get install git): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream git server: %w", err)
	}
	h := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Dir:  root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
		InheritEnv: []string{"PATH", "TMPDIR"},
		// Clients that hang up (a cut link) are expected here.
		Logger: log.New(io.Discard, "", 0),
	}
	s := &gitServer{root: root, addr: ln.Addr().String(), done: make(chan struct{})}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// url is the clone URL of repository name ("fleet/apps") on this server.
func (s *gitServer) url(addr, name string) string { return "http://" + addr + "/" + name + ".git" }

// stop closes the listener and waits for running requests, and so for
// their git http-backend processes, for up to 10 s; then drops them.
func (s *gitServer) stop() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.done
	})
}

// git runs the git CLI in dir with a configuration of its own (no user or
// system config), so the demo behaves the same on every machine.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ballast Demo", "GIT_AUTHOR_EMAIL=demo@ballast.invalid",
		"GIT_COMMITTER_NAME=Ballast Demo", "GIT_COMMITTER_EMAIL=demo@ballast.invalid",
	)
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// copyFS writes every file of fsys under dir.
func copyFS(fsys fs.FS, dir string) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// replaceInTree replaces old with new in every YAML file under dir (the
// .git directory excluded) and returns the files it changed.
func replaceInTree(dir, old, new string) ([]string, error) {
	var changed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte(old)) {
			return nil
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o644); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		changed = append(changed, filepath.ToSlash(rel))
		return nil
	})
	return changed, err
}

// cloudRegistry is the upstream OCI registry: a second embedded registry on
// its own data dir and loopback port. It holds the public images the apps
// use (under their edge-style names, reached with ?ns= like a pull-through
// mirror) and the bundles repository.
type cloudRegistry struct {
	reg    *registry.Registry
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startCloudRegistry(ctx context.Context, dataDir string, log *slog.Logger) (*cloudRegistry, error) {
	reg, err := registry.New(ctx, registry.Options{DataDir: dataDir, CredentialsFile: filepath.Join(dataDir, "registry-credentials"), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("upstream registry: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("upstream registry: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &cloudRegistry{reg: reg, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- reg.Serve(sctx, ln) }()
	return c, nil
}

func (c *cloudRegistry) stop() error {
	c.cancel()
	err := <-c.done
	return errors.Join(err, c.reg.Close())
}

// nsTransport sends every registry request to the cloud registry: requests
// for the cloud registry itself as they are, requests for any other
// registry (docker.io, ghcr.io, …) with ?ns=<that registry>, which the
// registry routes to its copy. It is how the "CI" of the demo pulls public
// images with no internet.
type nsTransport struct {
	cloud string // host:port
	next  http.RoundTripper
}

func (t nsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == t.cloud {
		return t.next.RoundTrip(req)
	}
	ns := req.URL.Host
	switch ns {
	case "index.docker.io", "registry-1.docker.io":
		ns = "docker.io"
	}
	r := req.Clone(req.Context())
	r.URL.Scheme = "http"
	r.URL.Host = t.cloud
	r.Host = t.cloud
	q := r.URL.Query()
	q.Set("ns", ns)
	r.URL.RawQuery = q.Encode()
	return t.next.RoundTrip(r)
}
