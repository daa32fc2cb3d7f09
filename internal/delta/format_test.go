package delta_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/testutil/elfgen"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
)

// elfLayers is an update of a layer holding an ELF file whose DWARF-like
// section is zlib-compressed as Go's linker does it, gzip-compressed.
func elfLayers(t testing.TB) (old, nw layergen.Layer) {
	// Words of a vocabulary with numbers between: compressible like
	// DWARF; the update inserts a record early on, so the zlib stream
	// differs from there to its end.
	rng := rand.New(rand.NewPCG(1, 2))
	var vocab []string
	for range 400 {
		w := make([]byte, 4+rng.IntN(12))
		for i := range w {
			w[i] = 'a' + byte(rng.IntN(26))
		}
		vocab = append(vocab, string(w))
	}
	var sec []byte
	for len(sec) < 300000 {
		sec = binary.AppendUvarint(append(sec, vocab[rng.IntN(len(vocab))]...), rng.Uint64N(1<<20))
	}
	mk := func(insert bool) []byte {
		s := sec
		if insert {
			s = append(append(append([]byte{}, sec[:20000]...), "main.newHandler\x00net/http.Error\x00"...), sec[20000:]...)
		}
		f := elfgen.ELF64([]elfgen.Section{{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: elfgen.Compressed(s, zlib.BestSpeed)}})
		return layergen.Tar([]layergen.File{{Name: "app/server", Data: f, Mode: 0o755}})
	}
	return layergen.Compress(t, mk(false), false), layergen.Compress(t, mk(true), false)
}

// Patch format 2 is its own artifact type and patch media type; Make
// keeps to format 1 when told; a format 2 patch is never applied as
// format 1; ParseIndex leaves out formats it does not know.
func TestPatchFormats(t *testing.T) {
	ctx := context.Background()
	old, nw := elfLayers(t)
	d2, p2, err := delta.Make(ctx, old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app")
	if err != nil || d2.Version != 2 || d2.Patch.MediaType != delta.MediaTypePatchV2 {
		t.Fatalf("format %d, %s: %v", d2.Version, d2.Patch.MediaType, err)
	}
	d1, p1, err := delta.Make(ctx, old.Desc, old.Blob, nw.Desc, nw.Blob, "example.com/app", delta.WithMaxFormat(1))
	if err != nil || d1.Version != 1 || d1.Patch.MediaType != delta.MediaTypePatch {
		t.Fatalf("format %d: %v", d1.Version, err)
	}
	t.Logf("patch: format 2 %d bytes, format 1 %d bytes, layer %d", len(p2), len(p1), nw.Desc.Size)
	if len(p2) >= len(p1) {
		t.Errorf("format 2 patch %d bytes, format 1 %d", len(p2), len(p1))
	}
	if _, _, err := delta.Make(ctx, old.Desc, old.Blob, nw.Desc, nw.Blob, "x", delta.WithMaxFormat(3)); err == nil {
		t.Error("format 3 accepted")
	}

	raw2, desc2, err := delta.BuildManifest(d2)
	if err != nil || desc2.ArtifactType != delta.ArtifactTypeV2 || !bytes.Contains(raw2, []byte(delta.ArtifactTypeV2)) {
		t.Fatalf("manifest: %s %v", desc2.ArtifactType, err)
	}
	back, err := delta.ParseManifest(raw2)
	if err != nil || back.Version != 2 {
		t.Fatalf("parsed format %v: %v", back, err)
	}
	if d2.BaseZlib == nil || back.BaseZlib == nil || *back.BaseZlib != *d2.BaseZlib || d1.BaseZlib != nil {
		t.Fatalf("zlib probe: made %+v, parsed %+v, format 1 %+v", d2.BaseZlib, back.BaseZlib, d1.BaseZlib)
	}
	// A format 1 manifest naming a format 2 patch, and the reverse, are refused.
	for _, swap := range [][2]string{{delta.ArtifactTypeV2, delta.ArtifactType}, {delta.MediaTypePatchV2, delta.MediaTypePatch}} {
		if _, err := delta.ParseManifest(bytes.Replace(raw2, []byte(swap[0]), []byte(swap[1]), 1)); err == nil {
			t.Errorf("manifest with %s swapped for %s accepted", swap[0], swap[1])
		}
	}
	// A format 2 patch under a delta that declares format 1: refused.
	base, err := delta.LoadBase(ctx, d2.Base, bytes.NewReader(old.Blob))
	if err != nil {
		t.Fatal(err)
	}
	// The edge's compress/zlib is checked on the base before the patch
	// crosses: a level that does not make the stream stands for a
	// compress/zlib that writes other bytes.
	if err := delta.ProbeBase(ctx, back, base); err != nil {
		t.Fatalf("probe: %v", err)
	}
	skew := *back
	p := *back.BaseZlib
	p.Level = zlib.BestCompression
	skew.BaseZlib = &p
	if err := delta.ProbeBase(ctx, &skew, base); !errors.Is(err, delta.ErrCompressorDiffers) {
		t.Fatalf("probe at another level: %v", err)
	}
	for _, bad := range []string{"", "1,2,3", "a,b,c,d", "-1,10,10,1", "0,0,10,1", "0,10,0,1", "0,10,10,12", "0,99999999,10,1", "0,10,99999999999,1"} {
		a := maps.Clone(desc2.Annotations)
		a[delta.AnnotationBaseZlib] = bad
		if _, err := delta.FromAnnotations(a); err == nil {
			t.Errorf("zlib probe %q accepted", bad)
		}
	}
	as1 := *d2
	as1.Version = 1
	if err := delta.Reconstruct(ctx, &as1, base, bytes.NewReader(p2), &bytes.Buffer{}); !errors.Is(err, delta.ErrBadPatch) {
		t.Fatalf("format 2 patch applied as format 1: %v", err)
	}
	var out bytes.Buffer
	if err := delta.Reconstruct(ctx, back, base, bytes.NewReader(p2), &out); err != nil || !bytes.Equal(out.Bytes(), nw.Blob) {
		t.Fatalf("format 2 reconstruct: %v", err)
	}

	// The index lists both formats and one from the future.
	_, desc1, _ := delta.BuildManifest(d1)
	future := desc2
	future.ArtifactType = "application/vnd.ballast.delta.v9"
	rev := strings.Repeat("a", 40)
	idx, _, err := delta.BuildIndex(rev, []v1.Descriptor{desc1, desc2, future})
	if err != nil {
		t.Fatal(err)
	}
	es, err := delta.ParseIndex(idx, rev)
	if err != nil || len(es) != 2 || es[0].Delta.Version != 1 || es[1].Delta.Version != 2 {
		t.Fatalf("index entries %+v: %v", es, err)
	}
	// Something that is no delta at all still refuses the index.
	var m map[string]any
	_ = json.Unmarshal(idx, &m)
	m["manifests"].([]any)[2].(map[string]any)["artifactType"] = "application/vnd.example.other"
	bad, _ := json.Marshal(m)
	if _, err := delta.ParseIndex(bad, rev); err == nil {
		t.Error("an index listing a non-delta manifest accepted")
	}
}
