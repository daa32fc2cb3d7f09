// Package containerd starts a private containerd (Debian's `containerd`
// package) for tests: its own root, state and socket in a temp dir, the CRI
// plugin disabled, and runs `ctr` against it. It needs root; the test is
// skipped with a loud reason when the binaries are missing or the test does
// not run as root (.ci/run installs containerd and runs as root).
package containerd

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Containerd is a running private containerd.
type Containerd struct {
	// Address is the gRPC socket, for `ctr --address`.
	Address string
	// Dir holds root, state, the socket, config.toml and containerd.log.
	Dir string

	cmd  *exec.Cmd
	done chan error
}

// Start starts containerd and stops it when the test ends.
func Start(t testing.TB) *Containerd {
	t.Helper()
	bin := realtest.LookPath(t, "containerd", "apt-get install containerd; .ci/run installs it")
	realtest.LookPath(t, "ctr", "apt-get install containerd; .ci/run installs it")
	realtest.Root(t, "containerd needs root")
	// A short base dir: unix socket paths are limited to ~108 bytes.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Address: filepath.Join(dir, "containerd.sock"), Dir: dir, done: make(chan error, 1)}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "--config", cfgPath)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// Own process group, so a stop reaches the shims too.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start containerd: %v", err)
	}
	go func() { c.done <- c.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { c.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.run(ctx, "version")
		cancel()
		if err == nil {
			return c
		}
		select {
		case werr := <-c.done:
			c.done <- werr
			t.Fatalf("containerd exited during start: %v\n%s", werr, c.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready after 30s: %v\n%s", err, c.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ctr runs `ctr --address <socket> args...` and returns its combined output.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, args...)
}

func (c *Containerd) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Address}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// Log returns containerd's log so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

func (c *Containerd) stop(t testing.TB) {
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	if t.Failed() {
		t.Logf("containerd log:\n%s", c.Log())
	}
	// Snapshots may hold mounts (native snapshotter has none); unmount
	// defensively is not needed, removal is enough.
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Logf("remove containerd dir: %v", err)
	}
}
