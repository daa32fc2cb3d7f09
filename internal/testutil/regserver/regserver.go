// Package regserver runs Debian's docker-registry (CNCF Distribution 2.8) on
// a free loopback port for tests: a real, independent registry.
package regserver

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry executable (apt package docker-registry).
const Binary = "docker-registry"

// Server is one running registry.
type Server struct {
	t        testing.TB
	dir      string
	Addr     string // 127.0.0.1:port
	User     string // empty without auth
	Password string
	cmd      *exec.Cmd
	log      *os.File
}

// Options configure a Server.
type Options struct {
	// Auth turns on htpasswd basic auth (for pulls and pushes alike).
	Auth bool
}

// Start runs a registry with storage in a temp dir; it is stopped when the
// test ends. Without the binary the test skips, loudly, or fails where real
// components are required (realtest: CI).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	realtest.LookPath(t, Binary, "apt-get install docker-registry; .ci/run installs it")
	s := &Server{t: t, dir: t.TempDir()}
	s.Addr = freeAddr(t)
	auth := ""
	if o.Auth {
		s.User, s.Password = "ballast", "s3cret-pass"
		hash, err := bcrypt.GenerateFromPassword([]byte(s.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		hp := filepath.Join(s.dir, "htpasswd")
		if err := os.WriteFile(hp, []byte(s.User+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", hp)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: test-secret
%s`, filepath.Join(s.dir, "data"), s.Addr, auth)
	if err := os.WriteFile(filepath.Join(s.dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start (re)starts a stopped server on the same address and storage.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "registry.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(Binary, "serve", filepath.Join(s.dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd, s.log = cmd, logf
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 || resp.StatusCode == 401 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	out, _ := os.ReadFile(filepath.Join(s.dir, "registry.log"))
	s.t.Fatalf("docker-registry on %s did not become ready: %s", s.Addr, strings.TrimSpace(string(out)))
}

// Stop stops the server (its storage stays for a later Start).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.log.Close()
	s.cmd = nil
}

// DataDir is the registry's storage root.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// Repo returns "addr/name".
func (s *Server) Repo(name string) string { return s.Addr + "/" + name }
