package edge_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// BenchmarkIdleDaemon measures the idle footprint of the real `ballast edge`
// binary with two mirrored repositories, once with an empty registry (the
// baseline) and once with the registry holding about 1 GiB: RSS after it
// settles, and CPU used over a quiet window.
func BenchmarkIdleDaemon(b *testing.B) {
	bin := os.Getenv("BALLAST_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "ballast")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/ballast-dev/ballast/cmd/ballast").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
	}
	gitserver.RequireGit(b)
	git := gitserver.New(b)
	var urls []string
	for _, n := range []string{"fleet/apps", "fleet/infra"} {
		git.CreateRepo(b, n).CommitN("main", 50)
		urls = append(urls, git.URL(n))
	}
	for n := 0; n < b.N; n++ {
		empty := idle(b, bin, urls, 0)
		full := idle(b, bin, urls, 1<<30)
		b.ReportMetric(empty.rssMB, "MB-rss-empty")
		b.ReportMetric(full.rssMB, "MB-rss-1GiB")
		b.ReportMetric(full.rssMB/empty.rssMB, "rss-ratio")
		b.ReportMetric(full.cpuPct, "cpu%-idle-1GiB")
	}
}

type footprint struct{ rssMB, cpuPct float64 }

func idle(b *testing.B, bin string, urls []string, fill int64) footprint {
	b.Helper()
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	if fill > 0 {
		fillRegistry(b, data, fill)
	}
	cfg := fmt.Sprintf("dataDir: %s\nlisten: {http: '127.0.0.1:0', registry: '127.0.0.1:0'}\nrepositories:\n", data)
	for _, u := range urls {
		cfg += fmt.Sprintf("  - url: %s\n    pollInterval: 30s\n", u)
	}
	p := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "edge", "--config", p, "--log-level", "warn")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(15 * time.Second) // clone both repos, first sync pass, settle
	cpu0 := cpuTicks(b, cmd.Process.Pid)
	const window = 20 * time.Second
	time.Sleep(window)
	cpu1 := cpuTicks(b, cmd.Process.Pid)
	return footprint{
		rssMB:  float64(rssKB(b, cmd.Process.Pid)) / 1024,
		cpuPct: 100 * float64(cpu1-cpu0) / 100 / window.Seconds(), // USER_HZ = 100
	}
}

// fillRegistry writes about n bytes of images into the edge registry of
// data dir, in process.
func fillRegistry(b *testing.B, data string, n int64) {
	reg, err := registry.New(context.Background(), registry.Options{DataDir: data, CredentialsFile: filepath.Join(data, "registry-credentials")})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	const layer = 32 << 20
	for i := int64(0); i*4*layer < n; i++ {
		img := testimage.Image(b, "linux/amd64", 4, layer)
		ref, _ := name.NewTag(fmt.Sprintf("edge.invalid/ghcr.io/org/fill%d:v1", i), name.Insecure)
		if err := remote.Write(ref, img, remote.WithTransport(reg.Transport())); err != nil {
			b.Fatal(err)
		}
	}
}

func rssKB(b *testing.B, pid int) int64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func cpuTicks(b *testing.B, pid int) int64 {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s)[strings.LastIndex(string(s), ")")+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return u + sy
}
