package syncer_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
)

// TestSyncManyBadDeltasOneLayer: a delta index that lists many deltas for
// one layer, each of whose patches crosses the link and then fails, must
// not make the link carry every patch on top of the whole layer: after
// one patch that crossed and failed, the layer comes whole.
func TestSyncManyBadDeltasOneLayer(t *testing.T) {
	s := newSite(t, nil)
	link := viaLink(t, s)
	up := layergen.Assets(t, 40)
	oldL, newL := layergen.Compress(t, up.Old, false), layergen.Compress(t, up.New, false)
	const ref = "ghcr.io/org/web:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, map[string]artifact{ref: layeredImage(t, newL)})
	d, patch, err := delta.Make(context.Background(), oldL.Desc, oldL.Blob, newL.Desc, newL.Blob, "ghcr.io/org/web")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(s.up.Repo(s.bundles), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, static.NewLayer([]byte("{}"), delta.MediaTypeEmpty)); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var descs []v1.Descriptor
	var patchBytes int64
	for i := range n {
		bad := append([]byte(nil), patch...)
		bad[len(bad)-20-i] ^= 0xff
		h, size, _ := v1.SHA256(bytes.NewReader(bad))
		d.Patch = v1.Descriptor{MediaType: delta.MediaTypePatch, Digest: h, Size: size}
		raw, desc, err := delta.BuildManifest(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteLayer(repo, static.NewLayer(bad, delta.MediaTypePatch)); err != nil {
			t.Fatal(err)
		}
		if err := remote.Put(repo.Digest(desc.Digest.String()), rawManifest{raw, desc.MediaType}); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
		patchBytes = size
	}
	idx, idesc, err := delta.BuildIndex(rev2, descs)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Tag(delta.IndexTag(rev2)), rawManifest{idx, idesc.MediaType}); err != nil {
		t.Fatal(err)
	}
	before := link.Down()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	edgeBlobVerified(t, s, ref, newL.Desc)
	moved := link.Down() - before
	t.Logf("layer %d bytes, patches %d bytes each; the link carried %d bytes; stats %+v", newL.Desc.Size, patchBytes, moved, s.sync.DeltaStats())
	if st := s.sync.DeltaStats(); st.Fallbacks > 1 {
		t.Fatalf("%d bad patches crossed the link for one layer, want at most 1", st.Fallbacks)
	}
	if moved > newL.Desc.Size+2*patchBytes+64<<10 {
		t.Fatalf("the link carried %d bytes for a %d-byte layer (patches of %d bytes)", moved, newL.Desc.Size, patchBytes)
	}
}
