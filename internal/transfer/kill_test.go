package transfer_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/linkproxy"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// The helper process of TestKillNine: one copy, then exit.
func TestMain(m *testing.M) {
	if os.Getenv("BALLAST_KILL_HELPER") == "1" {
		os.Exit(killHelper())
	}
	os.Exit(m.Run())
}

func killHelper() int {
	root, err := v1.NewHash(os.Getenv("ROOT_DIGEST"))
	if err != nil {
		return 3
	}
	src, err := registryclient.New(os.Getenv("SRC_REPO"), registryclient.WithInsecure(true), anon)
	if err != nil {
		return 3
	}
	d, err := src.Resolve(context.Background(), root.String())
	if err != nil {
		return 4
	}
	lay, err := layout.New(os.Getenv("DST_DIR"))
	if err != nil {
		return 5
	}
	// Progress lines tell the parent where to kill.
	e, err := transfer.New(transfer.WithStagingDir(os.Getenv("STAGING")), transfer.WithBandwidth(16<<20), transfer.WithConcurrency(2),
		transfer.WithProgress(func(ev transfer.Event) {
			if ev.Kind == transfer.BlobProgress {
				fmt.Println("progress", ev.Offset)
			}
		}))
	if err != nil {
		return 6
	}
	if _, err := e.Copy(context.Background(), transfer.Job{Src: src, Dst: lay, Root: d, Tags: []string{"v1"}}); err != nil {
		return 1
	}
	return 0
}

// TestKillNine kills a copying process with SIGKILL at seeded random points
// and restarts it until it finishes. At every point, a tag in the target
// means everything below it is present and verified (the root is the
// commit point), and the final result is complete. Most kills come after a
// few MiB of progress in that life, before any checkpoint (about once a
// second): they must land mid-blob (a partial blob staged), and every byte
// staged counts, so the link (counted by a proxy) carries the image plus
// only what was in flight at each kill.
func TestKillNine(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 3, 6<<20)
	root := pushIndex(t, up.Repo("k"), "v1", idx)
	link := linkproxy.Start(t, up.Addr)
	// Slower than the helper even under -race, so nothing waits in socket
	// buffers: a killed process loses what its kernel held unread.
	link.SetRate(6_000_000)
	dst, staging := t.TempDir(), t.TempDir()
	midBlob := 0
	staged := func() bool {
		ms, _ := filepath.Glob(filepath.Join(staging, "sha256-*", "data"))
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil && fi.Size() > 0 {
				return true
			}
		}
		return false
	}
	rng := rand.New(rand.NewPCG(42, 1))
	exe, _ := os.Executable()
	ctx := context.Background()
	check := func() bool {
		lay, err := layout.New(dst)
		if err != nil {
			t.Fatalf("layout unreadable after kill: %v", err)
		}
		d, err := lay.ResolveTag(ctx, "v1")
		if errors.Is(err, transfer.ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		err = oci.Walk(ctx, layoutFetcher{lay}, d, nil, func(n oci.Node) error {
			rc, err := lay.OpenBlob(ctx, n.Descriptor, 0)
			if err != nil {
				return err
			}
			defer rc.Close()
			h, size, err := v1.SHA256(rc)
			if err != nil || h != n.Descriptor.Digest || size != n.Descriptor.Size {
				return errors.New("blob " + n.Descriptor.Digest.String() + " damaged")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("tag present but content incomplete: %v", err)
		}
		return true
	}
	kills := 0
	for run := 0; run < 80; run++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "BALLAST_KILL_HELPER=1", "ROOT_DIGEST="+root.Digest.String(),
			"SRC_REPO="+link.Addr+"/k", "DST_DIR="+dst, "STAGING="+staging)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a seeded number of MiB of progress in this life, or
		// (one run in five) at a random early time, mid-startup.
		killAt := make(chan struct{})
		want := 1 + rng.IntN(4)
		early := rng.IntN(5) == 0
		go func() {
			sc := bufio.NewScanner(out)
			n := 0
			for sc.Scan() {
				if n++; n == want && !early {
					close(killAt)
				}
			}
		}()
		var timer <-chan time.Time
		if early {
			timer = time.After(time.Duration(rng.IntN(150)) * time.Millisecond)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("helper failed: %v", err)
			}
			if !check() {
				t.Fatal("helper finished but the tag is absent")
			}
			size := bundleSize(t, idx)
			ratio := float64(link.Down()) / float64(size)
			t.Logf("finished after %d kills (%d mid-blob); the link carried %d bytes for %d (%.4fx)", kills, midBlob, link.Down(), size, ratio)
			if kills < 10 || midBlob < 8 {
				t.Fatalf("only %d kills landed, %d mid-blob: test does not test crashes", kills, midBlob)
			}
			// A crash loses what the kernel and the HTTP client had
			// received but not handed on yet (socket buffers, the
			// transport's 128 KiB read buffer), never what was staged;
			// restarting from the last checkpoint instead costs MiBs a kill.
			perKill := (link.Down() - size) / int64(kills)
			t.Logf("link bytes beyond the image: %d per kill", perKill)
			if perKill > 320<<10 {
				t.Fatalf("the link carried %d bytes more than the image per kill, want <= 320 KiB (staged bytes were fetched again)", perKill)
			}
			// A stage is removed once its blob is in the target. A kill
			// between the two leaves the stage of a blob the next run
			// finds present (sync prunes such stages after a pass that
			// completes everything); any other stage left is a leak.
			ents, _ := os.ReadDir(staging)
			lay, err := layout.New(dst)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				hex, ok := strings.CutPrefix(e.Name(), "sha256-")
				if ok {
					d, err := v1.NewHash("sha256:" + hex)
					if err == nil {
						if has, _ := lay.BlobExists(ctx, v1.Descriptor{Digest: d}); has {
							t.Logf("stage of %s left by a kill after its commit", e.Name())
							continue
						}
					}
				}
				t.Fatalf("staging left behind: %s, whose blob is not in the target", e.Name())
			}
			return
		case <-killAt:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			if staged() {
				midBlob++
			}
			check()
		case <-timer:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			check()
		}
	}
	t.Fatalf("not finished after %d kills", kills)
}

type layoutFetcher struct{ l *layout.Layout }

func (f layoutFetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.l.FetchManifest(ctx, d)
}
