package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// TestDemoBinary runs the README's first command, `ballast demo`, as a
// person would: the real binary with its default (full-size) story. It
// must exit 0, tell the key steps, and leave no process and no file behind.
func TestDemoBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	gitserver.RequireGit(t)
	bin := os.Getenv("BALLAST_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "ballast")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/ballast-dev/ballast/cmd/ballast").CombinedOutput()
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// Its own process group: whatever it starts stays in the group, so an
	// empty group afterwards means nothing was left running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("ballast demo took %v; stdout:\n%s\nstderr:\n%s", time.Since(start), stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("ballast demo: %v", err)
	}
	pgid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		t.Errorf("processes of the demo's group are still running (kill -0: %v)", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in TMPDIR: %v", left)
	}

	story := stdout.String()
	for _, want := range []string{
		"== The cloud",
		"ballast bundle → 127.0.0.1:",
		"satellite link simulated by Toxiproxy",
		"git mirror fetched fleet/apps over the link",
		"transfers cut and resumed",
		"→ NOT READY:",
		"→ READY",
		"== A second revision changes one image",
		"revision 2 moved",
		"cut: the proxies are down",
		"offline: git ls-remote and git clone",
		"offline: GET 127.0.0.1:",
		"rollback to revision 1 with the link down",
		"status page: http://127.0.0.1:",
		"finished in",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	// The narration tells what happened: no raw log line (text or JSON
	// handler) may interleave with it, on either stream.
	rawLog := regexp.MustCompile(`(?m)(^time=|\blevel=(DEBUG|INFO|WARN|ERROR)\b|"level":|"msg":)`)
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		if m := rawLog.FindString(out); m != "" {
			t.Errorf("raw log line on %s (%q)", name, m)
		}
	}
}

// TestDemoBadDir: a working directory that holds something is refused
// (exit 1) before anything starts.
func TestDemoBadDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--dir", dir}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "not empty") {
		t.Errorf("stderr %q does not say why", errb.String())
	}
	if code := run(context.Background(), []string{"demo", "extra"}, &out, &errb); code != 2 {
		t.Errorf("demo with an argument: exit %d, want 2", code)
	}
}
