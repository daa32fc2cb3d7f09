package delta_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

func descOf(mt types.MediaType, blob []byte) v1.Descriptor {
	h, n, _ := v1.SHA256(bytes.NewReader(blob))
	return v1.Descriptor{MediaType: mt, Digest: h, Size: n}
}

func TestDetectReproducible(t *testing.T) {
	up := layergen.Assets(t, 40)
	for _, tc := range []struct {
		name   string
		layer  layergen.Layer
		format string
		lib    string
		level  int
	}{
		{"ggcr gzip", layergen.Compress(t, up.New, false), delta.FormatGzip, delta.LibGo, 1},
		{"ggcr zstd", layergen.Compress(t, up.New, true), delta.FormatZstd, delta.LibKlauspost, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := delta.Detect(tc.format, tc.layer.Blob, up.New)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != tc.format || r.Lib != tc.lib || r.Level != tc.level {
				t.Fatalf("recipe %s, want %s/%s level %d", r, tc.format, tc.lib, tc.level)
			}
		})
	}
	// The standard library at its default level with header fields set
	// (a name, a modification time), as some builders write.
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	zw.Name, zw.Comment, zw.OS = "layer.tar", "built", 3
	zw.ModTime = zw.ModTime.Add(1)
	zw.Write(up.New)
	zw.Close()
	r, err := delta.Detect(delta.FormatGzip, buf.Bytes(), up.New)
	if err != nil {
		t.Fatal(err)
	}
	if r.Lib != delta.LibGo || r.Level != -1 || r.Name != "layer.tar" || r.Comment != "built" || r.OS != 3 {
		t.Fatalf("recipe %s", r)
	}
	// Recompressing by the recipe gives the same bytes.
	var again bytes.Buffer
	w, err := r.Compress(&again)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(up.New)
	w.Close()
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("recompressed bytes differ")
	}
}

func TestDetectNotReproducible(t *testing.T) {
	up := layergen.Assets(t, 20)
	// GNU gzip's own deflate: no Go library makes its bytes.
	gz := realtest.LookPath(t, "gzip", "apt-get install gzip")
	dir := t.TempDir()
	p := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(p, up.New, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gz, "-n", "-6", p).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	blob, err := os.ReadFile(p + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := delta.Detect(delta.FormatGzip, blob, up.New); !errors.Is(err, delta.ErrNotReproducible) {
		t.Fatalf("GNU gzip layer: err %v, want ErrNotReproducible", err)
	}
	// A reproducible stream followed by bytes no compressor writes.
	l := layergen.Compress(t, up.New, false)
	if _, err := delta.Detect(delta.FormatGzip, append(append([]byte(nil), l.Blob...), 0, 0, 0), up.New); !errors.Is(err, delta.ErrNotReproducible) {
		t.Fatalf("trailing bytes: err %v, want ErrNotReproducible", err)
	}
	// Make refuses such a layer: it goes whole.
	old := layergen.Compress(t, up.Old, false)
	if _, _, err := delta.Make(context.Background(), old.Desc, old.Blob, descOf(types.OCILayer, blob), blob, "example.com/app"); !errors.Is(err, delta.ErrNotReproducible) {
		t.Fatalf("Make of a GNU gzip layer: err %v, want ErrNotReproducible", err)
	}
}

// roundTrip makes the delta of one update and applies it as the edge does.
func roundTrip(t *testing.T, up layergen.Update, zstd bool) (patch int, blob int) {
	t.Helper()
	old, nw := layergen.Compress(t, up.Old, zstd), layergen.Compress(t, up.New, zstd)
	d, patchBytes, err := delta.Make(context.Background(), old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	// The edge: verify the base, apply, recompress, check.
	base, err := delta.LoadBase(context.Background(), d.Base, bytes.NewReader(old.Blob))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := delta.Reconstruct(context.Background(), d, base, bytes.NewReader(patchBytes), &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), nw.Blob) {
		t.Fatal("reconstructed blob differs from the target")
	}
	// The artifact round-trips through its manifest.
	raw, _, err := delta.BuildManifest(d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := delta.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if back.Target != d.Target || back.Base != d.Base || back.Recipe != d.Recipe || back.Patch.Digest != d.Patch.Digest || back.Version != d.Version {
		t.Fatalf("manifest round trip: %+v, want %+v", back, d)
	}
	return len(patchBytes), len(nw.Blob)
}

func TestRoundTrip(t *testing.T) {
	rootfs, comps := int64(16<<20), []bool{false, true}
	if raceOn {
		rootfs, comps = 4<<20, []bool{false}
	}
	ups := []layergen.Update{layergen.Assets(t, 60), layergen.Rootfs(t, rootfs)}
	if !testing.Short() {
		ups = append(ups, layergen.GoService(t, true), layergen.GoService(t, false))
	}
	for _, up := range ups {
		for _, zstd := range comps {
			name := up.Kind + "/gzip"
			if zstd {
				name = up.Kind + "/zstd"
			}
			t.Run(name, func(t *testing.T) {
				p, b := roundTrip(t, up, zstd)
				t.Logf("patch %d bytes for a %d byte layer: %.3f", p, b, float64(p)/float64(b))
				if float64(p) > 0.3*float64(b) {
					t.Errorf("patch is %.2f of the layer, want at most 0.3", float64(p)/float64(b))
				}
			})
		}
	}
}

func TestBadPatchRefused(t *testing.T) {
	up := layergen.Assets(t, 30)
	old, nw := layergen.Compress(t, up.Old, false), layergen.Compress(t, up.New, false)
	d, patch, err := delta.Make(context.Background(), old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	base, err := delta.LoadBase(context.Background(), d.Base, bytes.NewReader(old.Blob))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), patch...)
	flipped[len(flipped)/2] ^= 0xff
	other := layergen.Compress(t, layergen.Assets(t, 31).New, false)
	otherBase, _, _ := delta.Content(other.Desc, other.Blob)
	_, otherContent, _ := delta.Content(other.Desc, other.Blob)
	_ = otherBase
	for _, tc := range []struct {
		name  string
		base  []byte
		patch []byte
	}{
		{"corrupt", base, flipped},
		{"truncated", base, patch[:len(patch)*2/3]},
		{"empty", base, nil},
		{"wrong base", otherContent, patch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := delta.Reconstruct(context.Background(), d, tc.base, bytes.NewReader(tc.patch), &out)
			if err == nil {
				t.Fatal("a bad patch was applied")
			}
			if !errors.Is(err, delta.ErrBadPatch) && !errors.Is(err, delta.ErrMismatch) {
				t.Fatalf("err %v: want ErrBadPatch or ErrMismatch", err)
			}
		})
	}
	// A base blob that is not the recorded one is refused before use.
	if _, err := delta.LoadBase(context.Background(), d.Base, bytes.NewReader(other.Blob)); err == nil {
		t.Fatal("a wrong base blob was loaded")
	}
	cut := old.Blob[:len(old.Blob)-10]
	if _, err := delta.LoadBase(context.Background(), d.Base, bytes.NewReader(cut)); err == nil {
		t.Fatal("a cut base blob was loaded")
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"", "{}", `{"format":"gzip","lib":"go","level":11}`, `{"format":"zstd","lib":"go","level":1}`,
		`{"format":"none","level":1}`, `{"format":"gzip","lib":"go","level":1,"extra":"!!"}`, `{"format":"gzip","lib":"go","level":1} x`,
		`{"format":"gzip","lib":"go","level":1,"bogus":1}`} {
		if _, err := delta.ParseRecipe(s); err == nil {
			t.Errorf("ParseRecipe(%q): no error", s)
		}
	}
	for _, s := range []string{"", "{}", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`} {
		if _, err := delta.ParseManifest([]byte(s)); err == nil {
			t.Errorf("ParseManifest(%q): no error", s)
		}
		if _, err := delta.ParseIndex([]byte(s), strings.Repeat("a", 40)); err == nil {
			t.Errorf("ParseIndex(%q): no error", s)
		}
	}
}

func sampleDelta(t testing.TB) (*delta.Delta, []byte) {
	old := layergen.Layer{Blob: gzipped(t, []byte("old content of a layer, long enough"))}
	old.Desc = descOf(types.OCILayer, old.Blob)
	nw := layergen.Layer{Blob: gzipped(t, []byte("new content of a layer, long enough!"))}
	nw.Desc = descOf(types.OCILayer, nw.Blob)
	d, _, err := delta.Make(context.Background(), old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	return d, old.Blob
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func FuzzParseRecipe(f *testing.F) {
	f.Add(`{"format":"gzip","lib":"go","level":1,"os":255}`)
	f.Add(`{"format":"zstd","lib":"klauspost","level":1}`)
	f.Add(`{"format":"none"}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := delta.ParseRecipe(s)
		if err != nil {
			return
		}
		back, err := delta.ParseRecipe(r.String())
		if err != nil || back != r {
			t.Fatalf("re-parse of %s: %v %v", r, back, err)
		}
		w, err := r.Compress(io.Discard)
		if err != nil {
			t.Fatalf("a parsed recipe does not compress: %v", err)
		}
		w.Write([]byte("x"))
		w.Close()
	})
}

func FuzzParseManifest(f *testing.F) {
	d, _ := sampleDelta(f)
	raw, desc, err := delta.BuildManifest(d)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	idx, _, _ := delta.BuildIndex(strings.Repeat("a", 40), []v1.Descriptor{desc})
	f.Add(idx)
	old, nw := elfLayers(f)
	if d2, _, err := delta.Make(context.Background(), old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app"); err == nil {
		raw2, desc2, _ := delta.BuildManifest(d2)
		f.Add(raw2)
		idx2, _, _ := delta.BuildIndex(strings.Repeat("a", 40), []v1.Descriptor{desc, desc2})
		f.Add(idx2)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if d, err := delta.ParseManifest(raw); err == nil {
			if _, _, err := delta.BuildManifest(d); err != nil {
				t.Fatalf("a parsed delta does not build: %v", err)
			}
		}
		if es, err := delta.ParseIndex(raw, strings.Repeat("a", 40)); err == nil {
			for _, e := range es {
				if e.Delta == nil {
					t.Fatal("nil delta")
				}
			}
		}
	})
}

// FuzzApply feeds arbitrary patches: they are refused or make a target
// whose digests are checked; never a panic or unbounded output.
func FuzzApply(f *testing.F) {
	d, oldBlob := sampleDelta(f)
	base, err := delta.LoadBase(context.Background(), d.Base, bytes.NewReader(oldBlob))
	if err != nil {
		f.Fatal(err)
	}
	good, _, _ := delta.Create(base, []byte("new content of a layer, long enough!"))
	f.Add(good)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0})
	f.Fuzz(func(t *testing.T, patch []byte) {
		var out bytes.Buffer
		err := delta.Reconstruct(context.Background(), d, base, bytes.NewReader(patch), &out)
		if err == nil && !bytes.Equal(patch, good) {
			// Another patch may make the same content: then the bytes
			// must be the target's.
			if got := descOf(types.OCILayer, out.Bytes()); got.Digest != d.Target.Digest {
				t.Fatal("a patch was accepted with the wrong result")
			}
		}
		if int64(out.Len()) > d.Target.Size*2+1024 {
			t.Fatalf("%d bytes written for a %d byte target", out.Len(), d.Target.Size)
		}
	})
}

// The edge checks its compressor on the base before a patch crosses: a
// base recipe this build does not reproduce (as with another compressor
// version) is refused.
func TestProbeBase(t *testing.T) {
	up := layergen.Assets(t, 30)
	old, nw := layergen.Compress(t, up.Old, false), layergen.Compress(t, up.New, false)
	d, _, err := delta.Make(context.Background(), old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app")
	if err != nil {
		t.Fatal(err)
	}
	if d.BaseRecipe == nil || *d.BaseRecipe != d.Recipe {
		t.Fatalf("base recipe %v, want the target's %s", d.BaseRecipe, d.Recipe)
	}
	base, err := delta.LoadBase(context.Background(), d.Base, bytes.NewReader(old.Blob))
	if err != nil {
		t.Fatal(err)
	}
	if err := delta.ProbeBase(context.Background(), d, base); err != nil {
		t.Fatal(err)
	}
	skewed := *d
	r := *d.BaseRecipe
	r.Level = 9
	skewed.BaseRecipe = &r
	if err := delta.ProbeBase(context.Background(), &skewed, base); !errors.Is(err, delta.ErrCompressorDiffers) {
		t.Fatalf("skewed recipe: err %v, want ErrCompressorDiffers", err)
	}
	// The base recipe survives the manifest.
	raw, _, _ := delta.BuildManifest(&skewed)
	back, err := delta.ParseManifest(raw)
	if err != nil || back.BaseRecipe == nil || *back.BaseRecipe != r {
		t.Fatalf("manifest round trip: %v %v", back, err)
	}
}
