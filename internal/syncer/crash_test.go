package syncer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/toxiproxy"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ballastBinary is the binary under test: $BALLAST_BIN (make test sets it)
// or one built for this test run.
func ballastBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BALLAST_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ballast-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ballast")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/ballast-dev/ballast/cmd/ballast").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestKillNineAnywhere kills `ballast sync --once` with SIGKILL at seeded
// random moments and checks, after every kill, that a bundle index is never
// present while anything it reaches is missing; then a last run finishes.
func TestKillNineAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("long: kills a real process 20 times")
	}
	bin := ballastBinary(t)
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	repo := git.CreateRepo(t, "fleet/apps")
	rev := repo.Commit("main", map[string]string{"app.yaml": "v1"})
	up := regserver.Start(t, regserver.Options{})
	pushBundle(t, up, "fleet/apps-bundles", rev, map[string]artifact{
		"docker.io/library/nginx:1.27.1": testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 3, 1<<20),
		"ghcr.io/org/app:v1":             testimage.Image(t, "linux/amd64", 4, 2<<20),
	})
	proxy := toxiproxy.Start(t, up.Addr)
	proxy.Add("bw", "bandwidth", `{"rate": 1024}`) // KB/s: the 11 MiB selection takes ~11 s

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "edge.yaml")
	cfg := fmt.Sprintf(`dataDir: %s
repositories:
  - url: %s
    bundles: %s/fleet/apps-bundles
    keepRevisions: 0
upstreamRegistries:
  %q: {insecure: true}
platforms: [linux/amd64]
`, dataDir, git.URL("fleet/apps"), proxy.Addr, proxy.Addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bundleRepo, _ := imageref.BundleRepository(git.URL("fleet/apps"))
	plats, _ := oci.ParsePlatforms("linux/amd64")

	// checkInvariant opens the data dir as the next process would.
	checkInvariant := func(i int) bool {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dataDir, "registry-credentials")); err != nil {
			return false // killed before the registry was ever opened
		}
		reg, err := registry.New(context.Background(), registry.Options{DataDir: dataDir, CredentialsFile: filepath.Join(dataDir, "registry-credentials")})
		if err != nil {
			t.Fatalf("kill %d: registry does not open after SIGKILL: %v", i, err)
		}
		defer reg.Close()
		p := registryclient.NewPresence("edge.invalid", registryclient.WithInsecure(true), registryclient.WithTransport(reg.Transport()))
		rep, err := bundle.CheckComplete(context.Background(), p, bundle.Placement{BundleRepo: bundleRepo, ImageRepo: func(r imageref.Ref) string { return r.EdgeRepository() }}, rev, plats)
		if err != nil {
			t.Fatalf("kill %d: check: %v", i, err)
		}
		if rep.Bundle != nil && !rep.Complete() {
			t.Fatalf("kill %d: bundle index present while content is missing: %v", i, rep.Missing)
		}
		return rep.Complete()
	}

	rng := rand.New(rand.NewPCG(20261126, 1))
	kills := 0
	for i := 0; i < 20; i++ {
		cmd := exec.Command(bin, "sync", "--once", "--config", cfgPath, "--log-level", "error")
		cmd.Stdout, cmd.Stderr = nil, nil
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wait := time.Duration(rng.Int64N(int64(time.Second))) + 20*time.Millisecond
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-time.After(wait):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		case <-done:
		}
		checkInvariant(i)
	}
	out, err := exec.Command(bin, "sync", "--once", "--config", cfgPath).CombinedOutput()
	if err != nil {
		holders, _ := exec.Command("sh", "-c", "for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null | grep -q "+filepath.Join(dataDir, "sync.lock")+" && cat $p/cmdline | tr '\\0' ' ' && echo; done").CombinedOutput()
		t.Logf("lock holders: %s", holders)
		t.Fatalf("final sync after %d kills: %v\n%s", kills, err, out)
	}
	if !checkInvariant(99) {
		t.Fatalf("not complete after the final run:\n%s", out)
	}
	t.Logf("%d SIGKILLs, then complete", kills)
}
