package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/install"
	"github.com/ballast-dev/ballast/internal/testutil/containerd"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// TestContainerdPullsWhatSyncBrought is the whole node path: CI's bundle
// upstream, sync into the edge registry, the gate says ready, and
// containerd pulls every image by tag and by digest through the
// containerd/certs.d files that `ballast install` writes, with no route to
// any upstream registry.
func TestContainerdPullsWhatSyncBrought(t *testing.T) {
	if testing.Short() {
		t.Skip("containerd test skipped in -short mode")
	}
	ctrd := containerd.Start(t)
	s := startEdge(t)
	imgs := map[string]v1.Image{
		"docker.io/library/nginx:1.27.1": runnable(t, 2, 256<<10),
		"ghcr.io/org/app:v1":             runnable(t, 1, 128<<10),
		"127.0.0.1:5001/team/tool:3":     runnable(t, 1, 64<<10),
	}
	rev := s.release(imgs)
	s.waitSynced(rev)
	if r := s.verify(rev, func(o *verify.Options) { o.Activate = true }); !r.Ready {
		t.Fatalf("gate: %+v", r)
	}

	// Install for the daemon as it is bound (the test config asks for any
	// free port, which install refuses: it has to write real ports).
	bound := *s.cfg
	bound.Listen.HTTP = strings.TrimPrefix(s.mirror, "http://")
	bound.Listen.Registry = s.registry
	files, err := install.Render(&bound, []byte("dataDir: /x\n"), install.Options{Image: "ghcr.io/ballast-dev/ballast:test"})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostsDir := filepath.Join(root, "containerd", "certs.d")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for ref, img := range imgs {
		r, _ := imageref.Parse(ref)
		d, _ := img.Digest()
		for _, pull := range []string{ref, r.Name() + "@" + d.String()} {
			out, err := ctrd.Ctr(ctx, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", pull)
			if err != nil {
				t.Fatalf("pull %s: %v\n%s", pull, err, out)
			}
			ls, err := ctrd.Ctr(ctx, "images", "ls")
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, l := range strings.Split(ls, "\n") {
				found = found || strings.Contains(l, pull) && strings.Contains(l, d.String())
			}
			if !found {
				t.Fatalf("%s not listed with digest %s after pull:\n%s", pull, d, ls)
			}
		}
	}
}

// runnable is a linux/amd64 image whose layers are real gzipped tar files,
// so containerd can unpack it.
func runnable(t *testing.T, layers int, size int64) v1.Image {
	t.Helper()
	img := testimage.Image(t, "linux/amd64", 0, 0)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}
