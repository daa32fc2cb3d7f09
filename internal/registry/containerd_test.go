package registry_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
	"github.com/ballast-dev/ballast/internal/testutil/containerd"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
)

// TestContainerdPullsThroughMirror: Debian's containerd pulls images of
// three upstream registries through the edge registry, configured with the
// hosts.toml that k3sconfig generates (what `ballast install` writes), by
// tag and by digest. There is no internet here, so a successful pull can
// only have come from the edge registry, via its ns routing.
func TestContainerdPullsThroughMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("containerd test skipped in -short mode")
	}
	ctrd := containerd.Start(t)
	s := edgeregistry.Start(t, edgeregistry.Options{})

	images := []string{
		"docker.io/library/x:1.0",
		"ghcr.io/org/y:2",
		"127.0.0.1:5001/team/z:3",
	}
	hostsDir := t.TempDir()
	digests := map[string]string{}
	for _, ref := range images {
		r, err := imageref.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		// Stored under the edge name: 127.0.0.1:5001 → 127.0.0.1_5001.
		d := push(t, s, r.EdgeRepository()+":"+r.Tag, randomImage(t, 2))
		digests[ref] = d.String()

		toml, err := k3sconfig.HostsTOML(s.Host, r.Registry)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(hostsDir, k3sconfig.HostsDir(r.Registry))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ref := range images {
		r, _ := imageref.Parse(ref)
		byDigest := r.Name() + "@" + digests[ref]
		for _, pull := range []string{ref, byDigest} {
			t.Run(pull, func(t *testing.T) {
				out, err := ctrd.Ctr(ctx, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", pull)
				if err != nil {
					t.Fatalf("pull: %v", err)
				}
				ls, err := ctrd.Ctr(ctx, "images", "ls")
				if err != nil {
					t.Fatal(err)
				}
				if !lineWith(ls, pull, digests[ref]) {
					t.Fatalf("image %s with digest %s not listed after pull:\n%s\npull output:\n%s", pull, digests[ref], ls, out)
				}
			})
		}
	}
}

func lineWith(s string, words ...string) bool {
	for _, l := range strings.Split(s, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestContainerdDefaultMirror: one "_default" hosts.toml (what k3s writes
// for a "*" mirror) serves every registry.
func TestContainerdDefaultMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("containerd test skipped in -short mode")
	}
	ctrd := containerd.Start(t)
	s := edgeregistry.Start(t, edgeregistry.Options{})
	hostsDir := t.TempDir()
	toml, err := k3sconfig.HostsTOML(s.Host, k3sconfig.AllRegistries)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(hostsDir, k3sconfig.HostsDir(k3sconfig.AllRegistries))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ref := range []string{"docker.io/library/w:1", "quay.io/org/v:2", "127.0.0.1:5002/u:3"} {
		r, _ := imageref.Parse(ref)
		d := push(t, s, r.EdgeRepository()+":"+r.Tag, randomImage(t, 1))
		if _, err := ctrd.Ctr(ctx, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", ref); err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		ls, _ := ctrd.Ctr(ctx, "images", "ls")
		if !lineWith(ls, ref, d.String()) {
			t.Fatalf("%s@%s not listed:\n%s", ref, d, ls)
		}
	}
}
