package edge_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// stalledClients and stalledBody are the attack of issue 11 §4: clients
// that each send just under the 10 MiB request limit to git-upload-pack,
// then stall.
const (
	stalledClients = 100
	stalledBody    = 10<<20 - 1
	stalledSent    = 10<<20 - 64<<10
	rssLimitMB     = 150
)

// TestStalledUploadPackClientsBoundedMemory runs the real `ballast edge`
// binary, lets 100 clients each send just under 10 MiB of an upload-pack
// request and stall, and checks that the daemon's peak RSS (VmHWM) stays
// under 150 MB and that a real clone through the mirror still works while
// they stall. Bodies used to be buffered in memory before the serving
// limit: 30 such clients took the daemon from 130 to 660 MiB.
func TestStalledUploadPackClientsBoundedMemory(t *testing.T) {
	git := gitserver.RequireGit(t)
	bin := ballastBinary(t)
	up := gitserver.New(t)
	up.CreateRepo(t, "fleet/apps").CommitN("main", 20)

	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf("dataDir: %s\nlisten: {http: '127.0.0.1:%d', registry: '127.0.0.1:0'}\nrepositories:\n  - url: %s\n    pollInterval: 1h\n",
		filepath.Join(dir, "data"), port, up.URL("fleet/apps"))
	p := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "edge", "--config", p, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base)
	mirror := base + "/git/" + strings.TrimPrefix(up.URL("fleet/apps"), "http://")
	clone(t, git, mirror, filepath.Join(dir, "warm")) // the daemon at work once, as in production
	before := vmKB(t, cmd.Process.Pid, "VmRSS")

	var wg sync.WaitGroup
	conns := make([]net.Conn, stalledClients)
	chunk := make([]byte, 1<<20)
	for i := range conns {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := strings.TrimPrefix(mirror, base) + "/git-upload-pack"
			_, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: %d\r\n\r\n", path, stalledBody)
			for sent := 0; err == nil && sent < stalledSent; sent += len(chunk) {
				_, err = c.Write(chunk[:min(len(chunk), stalledSent-sent)])
			}
			// A refused client (503: no spool slot) sees its connection
			// closed; the others now stall with their bodies unfinished.
		}()
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	wg.Wait()
	// While every client stalls, Argo CD still clones.
	clone(t, git, mirror, filepath.Join(dir, "during"))
	peak := vmKB(t, cmd.Process.Pid, "VmHWM")
	now := vmKB(t, cmd.Process.Pid, "VmRSS")
	t.Logf("daemon RSS: %.1f MB before, %.1f MB with %d stalled clients, peak %.1f MB",
		float64(before)/1024, float64(now)/1024, stalledClients, float64(peak)/1024)
	if peak/1024 >= rssLimitMB {
		t.Fatalf("daemon peak RSS %.1f MB with %d stalled upload-pack clients, want under %d MB", float64(peak)/1024, stalledClients, rssLimitMB)
	}
}

func ballastBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("BALLAST_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "ballast")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ballast-dev/ballast/cmd/ballast").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon never ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func clone(t *testing.T, git, url, dst string) {
	t.Helper()
	cmd := exec.Command(git, "clone", "--bare", "-q", url, dst)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone %s: %v\n%s", url, err, out)
	}
}

func vmKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, field+":") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
