package cli

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEdgeConfigErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no --config", []string{"edge"}},
		{"missing file", []string{"edge", "--config", filepath.Join(dir, "nope.yaml")}},
		{"not yaml", []string{"edge", "--config", write("bad.yaml", "dataDir: [\n")}},
		{"unknown key", []string{"edge", "--config", write("unknown.yaml", "dataDir: /x\nbogus: 1\n")}},
		{"bad url", []string{"edge", "--config", write("url.yaml", "dataDir: /x\nrepositories:\n  - url: ext::sh\n")}},
		{"extra arg", []string{"edge", "--config", write("ok.yaml", "dataDir: /x\n"), "extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, errOut, code := runCLI(t, tc.args...); code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errOut)
			}
		})
	}
}

// TestEdgeStopsOnSIGTERM runs the real binary and stops it as a service
// manager or the kubelet would.
func TestEdgeStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := os.Getenv("BALLAST_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "ballast")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/ballast-dev/ballast/cmd/ballast").CombinedOutput()
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(cfg, []byte("dataDir: data\nlisten: {http: \""+addr+"\", registry: \"127.0.0.1:0\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "edge", "--config", cfg, "--log-format", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never answered: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "edge: stopped") {
		t.Errorf("no clean-stop log:\n%s", stderr.String())
	}
}
