// Package lfsserver is the test helper for a real Git LFS server: the git-lfs
// project's reference server, github.com/git-lfs/lfs-test-server, built from
// the Go module proxy at a pinned version into the user cache directory
// (once per version and Go release) and run on 127.0.0.1. It serves the LFS
// batch API at http://<addr>/<user>/<repo>/objects/batch, anonymously
// (LFS_PUBLIC), and can be stopped and started again on the same address.
package lfsserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// Version is the lfs-test-server release the helper builds. It predates Go
// modules: the helper writes its go.mod with the dependency versions below
// (go.zipexe v1.0.2, through go.rice v1.0.3: v1.0.0 panics at start on
// binaries from current Go toolchains).
const Version = "v0.4.0"

const module = "github.com/git-lfs/lfs-test-server"

// requires pins lfs-test-server's dependencies (it has no go.mod of its own).
var requires = []string{
	"github.com/GeertJohan/go.rice v1.0.3",
	"github.com/boltdb/bolt v1.3.1",
	"github.com/gorilla/context v1.1.2",
	"github.com/gorilla/mux v1.8.1",
	"github.com/daaku/go.zipexe v1.0.2",
	"golang.org/x/sys v0.50.0",
}

var buildMu sync.Mutex

// Binary returns the path of the built lfs-test-server, building it on first
// use into $XDG_CACHE_HOME/ballast/lfs-test-server-<Version>-<go version>/.
// When it cannot be built (no go command, no module proxy) the test skips
// loudly, or fails under BALLAST_REQUIRE_REAL=1.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "ballast", "lfs-test-server-"+Version+"-"+runtime.Version(), "lfs-test-server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := build(bin); err != nil {
		realtest.Missing(tb, "lfs-test-server "+Version+": "+err.Error(),
			"needs the go command and the Go module proxy to build "+module+"@"+Version)
	}
	return bin
}

func build(bin string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "lfs-test-server-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	run := func(dir string, args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOWORK=off")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	out, err := run(work, "mod", "download", "-json", module+"@"+Version)
	if err != nil {
		return err
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download output %q: %v", out, err)
	}
	// The module cache is read-only: build a writable copy with a go.mod.
	src := filepath.Join(work, "src")
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		return err
	}
	gomod := "module " + module + "\n\ngo 1.22\n\nrequire (\n\t" + strings.Join(requires, "\n\t") + "\n)\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	if _, err := run(src, "build", "-trimpath", "-o", tmp, "."); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, bin)
}

// Server is a running lfs-test-server.
type Server struct {
	bin, dir, addr string
	host           string // host:port written into action hrefs ("" = addr)

	mu  sync.Mutex
	cmd *exec.Cmd
}

// New starts an lfs-test-server on a free loopback port, with its content
// and metadata under a test temp dir. It stops at test cleanup.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{bin: Binary(tb), dir: tb.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ln.Close()
	s.Start(tb)
	tb.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns the LFS endpoint of repository user/repo (what lfs.url or a
// .lfsconfig names): http://<addr>/<user>/<repo>.
func (s *Server) URL(userRepo string) string { return "http://" + s.addr + "/" + userRepo }

// Start (re)starts the server on its address and waits until it answers.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin)
	cmd.Env = []string{
		"LFS_LISTEN=tcp://" + s.addr,
		"LFS_HOST=" + cmp.Or(s.host, s.addr),
		"LFS_CONTENTPATH=" + filepath.Join(s.dir, "content"),
		"LFS_METADB=" + filepath.Join(s.dir, "lfs.db"),
		"LFS_ADMINUSER=admin", "LFS_ADMINPASS=admin",
		"LFS_PUBLIC=true",
		"PATH=" + os.Getenv("PATH"),
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("start lfs-test-server: %v", err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			s.cmd = nil
			tb.Fatalf("lfs-test-server exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("lfs-test-server did not listen on %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetHost restarts the server so that the hrefs of its batch answers name
// host ("host:port") instead of its own address: a counting or faulty proxy
// in front of it then sees the object downloads too.
func (s *Server) SetHost(tb testing.TB, host string) {
	tb.Helper()
	s.Stop()
	s.host = host
	s.Start(tb)
}

// Stop kills the server: the LFS upstream is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err != nil {
			break
		} else {
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = nil
}

// Object is one LFS object: its sha256 (hex) and size in bytes.
type Object struct {
	OID  string
	Size int64
}

// Pointer returns the pointer file text git-lfs writes for the object
// (the git-lfs spec's "version", "oid", "size" lines).
func (o Object) Pointer() string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", o.OID, o.Size)
}

// ObjectOf returns the Object of content.
func ObjectOf(content []byte) Object {
	sum := sha256.Sum256(content)
	return Object{OID: hex.EncodeToString(sum[:]), Size: int64(len(content))}
}

const lfsMediaType = "application/vnd.git-lfs+json"

// Upload stores content in repository user/repo through the batch API, as
// `git lfs push` would, and returns its Object.
func (s *Server) Upload(tb testing.TB, userRepo string, content []byte) Object {
	tb.Helper()
	obj := ObjectOf(content)
	req := map[string]any{"operation": "upload", "transfers": []string{"basic"},
		"objects": []map[string]any{{"oid": obj.OID, "size": obj.Size}}}
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, s.URL(userRepo)+"/objects/batch", bytes.NewReader(body))
	hr.Header.Set("Accept", lfsMediaType)
	hr.Header.Set("Content-Type", lfsMediaType)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		tb.Fatalf("lfs batch: %v", err)
	}
	defer resp.Body.Close()
	var br struct {
		Objects []struct {
			Actions map[string]struct {
				Href   string            `json:"href"`
				Header map[string]string `json:"header"`
			} `json:"actions"`
		} `json:"objects"`
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("lfs batch: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&br); err != nil || len(br.Objects) != 1 {
		tb.Fatalf("lfs batch answer: %v", err)
	}
	up, ok := br.Objects[0].Actions["upload"]
	if !ok {
		return obj // already there
	}
	put, _ := http.NewRequest(http.MethodPut, up.Href, bytes.NewReader(content))
	for k, v := range up.Header {
		put.Header.Set(k, v)
	}
	put.ContentLength = obj.Size
	put.Header.Set("Content-Type", "application/octet-stream")
	pr, err := http.DefaultClient.Do(put)
	if err != nil {
		tb.Fatalf("lfs upload: %v", err)
	}
	b, _ := io.ReadAll(pr.Body)
	pr.Body.Close()
	if pr.StatusCode != 200 {
		tb.Fatalf("lfs upload: %s: %s", pr.Status, b)
	}
	return obj
}
