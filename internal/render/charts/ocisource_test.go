package charts_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

func TestFetchSource(t *testing.T) {
	reg := regserver.Start(t, regserver.Options{})
	files := map[string]string{"guestbook/deploy.yaml": "kind: x\n", "other/a.yaml": "kind: y\n"}
	d100 := helmrepo.PushSource(t, reg.Addr+"/manifests/app:1.0.0", helmrepo.TarGz(t, files))
	d110 := helmrepo.PushSource(t, reg.Addr+"/manifests/app:1.1.0", helmrepo.TarGz(t, files))
	helmrepo.PushSource(t, reg.Addr+"/manifests/app:2.0.0", helmrepo.TarGz(t, files))
	pushChart(t, reg.Addr, demo("0.3.0", "example.com/demo:0.3.0")) // charts/demo

	for _, tt := range []struct {
		repoURL, rev, wantVersion, wantDigest, wantFile string
	}{
		{"oci://" + reg.Addr + "/manifests/app", "1.0.0", "1.0.0", d100, "guestbook/deploy.yaml"},
		{"oci://" + reg.Addr + "/manifests/app", "^1.0", "1.1.0", d110, "other/a.yaml"},
		{"oci://" + reg.Addr + "/manifests/app", d100, d100, d100, "guestbook/deploy.yaml"},
		// A Helm chart layer: the chart is at the top, so path "." is the chart.
		{"oci://" + reg.Addr + "/charts/demo", "0.3.0", "0.3.0", "", "Chart.yaml"},
	} {
		t.Run(tt.rev, func(t *testing.T) {
			f := &charts.Fetcher{}
			dir, res, cleanup, err := f.FetchSource(context.Background(), tt.repoURL, tt.rev)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			if res.Version != tt.wantVersion || (tt.wantDigest != "" && res.Digest != tt.wantDigest) {
				t.Errorf("resolved %+v, want %s %s", res, tt.wantVersion, tt.wantDigest)
			}
			if _, err := os.Stat(filepath.Join(dir, tt.wantFile)); err != nil {
				t.Errorf("extracted: %v", err)
			}
			cleanup()
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cleanup left %s", dir)
			}
		})
	}

	bad := func(name string, entries ...entry) []byte { return tgz(t, entries...) }
	helmrepo.PushSource(t, reg.Addr+"/bad/two:1.0.0", helmrepo.TarGz(t, files), helmrepo.TarGz(t, files))
	helmrepo.PushSource(t, reg.Addr+"/bad/link:1.0.0", bad("link", entry{name: "a.yaml", typ: tar.TypeSymlink, link: "/etc/passwd"}))
	helmrepo.PushSource(t, reg.Addr+"/bad/dotdot:1.0.0", bad("dotdot", entry{name: "x/../../a.yaml", body: "a"}))
	helmrepo.PushSource(t, reg.Addr+"/bad/dup:1.0.0", bad("dup", entry{name: "a.yaml", body: "a"}, entry{name: "a.yaml", body: "b"}))
	for _, tt := range []struct{ repo, rev, want string }{
		{"bad/two", "1.0.0", "2 layers of the types Argo CD accepts"},
		{"bad/link", "1.0.0", "links are refused"},
		{"bad/dotdot", "1.0.0", "leaves the archive"},
		{"bad/dup", "1.0.0", "a.yaml"},
		{"manifests/app", "9.9.9", "manifests/app:9.9.9"},
		{"manifests/app", "~7.0", `no tag matches "~7.0"`},
	} {
		t.Run(tt.repo+" "+tt.rev, func(t *testing.T) {
			_, _, _, err := (&charts.Fetcher{}).FetchSource(context.Background(), "oci://"+reg.Addr+"/"+tt.repo, tt.rev)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "OCI source oci://"+reg.Addr+"/"+tt.repo) {
				t.Fatalf("err %v, want it to name the source and say %q", err, tt.want)
			}
			if errors.Is(err, charts.ErrUnavailable) {
				t.Errorf("bad input classed as unavailable: %v", err)
			}
		})
	}
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "ballast-oci-source-*"))
	for _, l := range left {
		t.Logf("note: %s exists (maybe another run's)", l)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(helmrepo.TarGz(f, map[string]string{"a/b.yaml": "x"}), false)
	f.Add(tgz(f, entry{name: "a/../../b", body: "x"}), true)
	f.Add(tgz(f, entry{name: "l", typ: tar.TypeSymlink, link: "/"}), false)
	f.Fuzz(func(t *testing.T, data []byte, strip bool) {
		gz, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "x")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = charts.Extract(gz, dir, 1<<20, strip)
		// Whatever happened, nothing was written beside dir, and no link.
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Fatalf("wrote outside the directory: %v", entries)
		}
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type()&os.ModeSymlink != 0 {
				t.Fatalf("symlink %s", p)
			}
			return nil
		})
	})
}

// OCI sources are kept in the cache: a digest or exact version is then
// read without network, a moving tag only when the registry is gone.
func TestFetchSourceCache(t *testing.T) {
	reg := regserver.Start(t, regserver.Options{})
	files := map[string]string{"a/deploy.yaml": "kind: x\n"}
	d := helmrepo.PushSource(t, reg.Addr+"/manifests/app:1.0.0", helmrepo.TarGz(t, files))
	helmrepo.PushSource(t, reg.Addr+"/manifests/app:stable", helmrepo.TarGz(t, files))
	cache := t.TempDir()
	repo := "oci://" + reg.Addr + "/manifests/app"
	for _, rev := range []string{"1.0.0", d, "stable"} {
		f := &charts.Fetcher{CacheDir: cache}
		_, res, cleanup, err := f.FetchSource(context.Background(), repo, rev)
		if err != nil {
			t.Fatal(err)
		}
		cleanup()
		if res.Cached || res.Manifest != d {
			t.Errorf("%s, first fetch: %+v", rev, res)
		}
	}
	reg.Stop()
	for _, rev := range []string{"1.0.0", d, "stable"} {
		f := &charts.Fetcher{CacheDir: cache}
		dir, res, cleanup, err := f.FetchSource(context.Background(), repo, rev)
		if err != nil {
			t.Fatalf("%s offline: %v", rev, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "a/deploy.yaml")); err != nil {
			t.Errorf("%s offline: %v", rev, err)
		}
		cleanup()
		if !res.Cached || res.Manifest != d || res.Version != rev {
			t.Errorf("%s offline: %+v", rev, res)
		}
	}
	// A damaged cached layer is not used.
	blobs, _ := filepath.Glob(filepath.Join(cache, "*", "sources", "blobs", "*"))
	if len(blobs) != 1 {
		t.Fatalf("cached blobs %v, want one", blobs)
	}
	if err := os.WriteFile(blobs[0], []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &charts.Fetcher{CacheDir: cache}
	if _, _, _, err := f.FetchSource(context.Background(), repo, "1.0.0"); !errors.Is(err, charts.ErrUnavailable) {
		t.Errorf("damaged cache, registry down: %v, want unavailable", err)
	}
}
