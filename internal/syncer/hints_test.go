package syncer_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// retagIndex re-pushes the bundle index of sha after f changed it (as a
// bundle made by something other than `ballast bundle` could be).
func retagIndex(t *testing.T, s *site, sha string, f func(*v1.IndexManifest)) {
	t.Helper()
	tag, _ := name.NewTag(s.up.Repo(s.bundles)+":"+sha, name.Insecure)
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(desc.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	f(&idx)
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tag, rawManifest{raw, idx.MediaType}); err != nil {
		t.Fatal(err)
	}
}

// TestSyncBlobHints: a bundle's blob hints are fetched before the
// manifests; a hinted blob that no manifest reaches crosses the link
// (counted) but is not kept, and hints that do not parse are ignored
// (the walk brings the bundle as without them).
func TestSyncBlobHints(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hints func(t *testing.T, s *site, extra v1.Descriptor) func(*v1.IndexManifest)
		extra bool // the unreached blob crosses the link
	}{
		{"unreached hint", func(t *testing.T, s *site, extra v1.Descriptor) func(*v1.IndexManifest) {
			return func(idx *v1.IndexManifest) {
				hs, err := bundle.ParseBlobHints(idx.Manifests[0].Annotations[bundle.AnnotationBlobs])
				if err != nil {
					t.Fatal(err)
				}
				hs = append(hs, bundle.BlobHint{Digest: extra.Digest, Size: extra.Size})
				raw, _ := json.Marshal(hs)
				idx.Manifests[0].Annotations[bundle.AnnotationBlobs] = string(raw)
			}
		}, true},
		{"hints that do not parse", func(t *testing.T, s *site, extra v1.Descriptor) func(*v1.IndexManifest) {
			return func(idx *v1.IndexManifest) {
				idx.Manifests[0].Annotations[bundle.AnnotationBlobs] = `[{"digest":"` + extra.Digest.String() + `","size":-1}]`
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, nil)
			link := viaLink(t, s)
			img := testimage.Image(t, "linux/amd64", 2, mb)
			// Another image in the bundles repository: its layer is
			// upstream, but the bundle does not reach it.
			other := testimage.Image(t, "linux/amd64", 1, mb/2)
			ref, _ := name.ParseReference(s.up.Repo(s.bundles)+":other", name.Insecure)
			if err := remote.Write(ref, other); err != nil {
				t.Fatal(err)
			}
			ol, _ := other.Layers()
			od, _ := ol[0].Digest()
			osz, _ := ol[0].Size()
			extra := v1.Descriptor{Digest: od, Size: osz}

			rev := s.commit(map[string]string{"a": "1"})
			pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"docker.io/library/app:1": img})
			retagIndex(t, s, rev, tc.hints(t, s, extra))
			if res := s.pass(); !res.Done() || res.Complete != 1 {
				t.Fatalf("pass: %+v", res)
			}
			if rep := s.check(rev); !rep.Complete() {
				t.Fatalf("not complete: %v", rep.Missing)
			}
			held, err := s.reg.HoldsBlob(context.Background(), od.String())
			if err != nil || held {
				t.Fatalf("the unreached hinted blob is in the edge registry (%v, %v)", held, err)
			}
			moved := link.Down()
			want := int64(2 * mb)
			if tc.extra {
				want += osz
			}
			if moved < want || moved > want+64<<10 {
				t.Fatalf("link moved %d bytes, want about %d", moved, want)
			}
			ents, _ := os.ReadDir(datadir.Of(s.cfg.DataDir).Staging())
			if len(ents) != 0 {
				t.Fatalf("staging keeps %d entries", len(ents))
			}
		})
	}
}

// TestSyncHintsThatLieAboutSizesKeepDeltas: a hint whose size is not the
// layer's (a buggy bundle index) must not cost the layer its delta: the
// edge still makes it from the patch (the hint's size matches no delta:
// served whole, it does not mark the layer's deltas failed).
func TestSyncHintsThatLieAboutSizesKeepDeltas(t *testing.T) {
	s := newSite(t, nil)
	link := viaLink(t, s)
	up := layergen.Rootfs(t, 3<<20)
	oldL, newL := layergen.Compress(t, up.Old, false), layergen.Compress(t, up.New, false)
	const ref = "ghcr.io/org/app:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	imgs := map[string]artifact{ref: layeredImage(t, newL)}
	pushBundle(t, s.up, s.bundles, rev2, imgs)
	sum := publishDeltas(t, s, rev2, []string{rev1}, imgs)
	if sum.Deltas != 1 {
		t.Fatalf("deltas published: %+v", sum)
	}
	retagIndex(t, s, rev2, func(idx *v1.IndexManifest) {
		hs, err := bundle.ParseBlobHints(idx.Manifests[0].Annotations[bundle.AnnotationBlobs])
		if err != nil {
			t.Fatal(err)
		}
		for i := range hs {
			hs[i].Size++
		}
		raw, _ := json.Marshal(hs)
		idx.Manifests[0].Annotations[bundle.AnnotationBlobs] = string(raw)
	})
	before := link.Down()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	if rep := s.check(rev2); !rep.Complete() {
		t.Fatalf("not complete: %v", rep.Missing)
	}
	edgeBlobVerified(t, s, ref, newL.Desc)
	if st := s.sync.DeltaStats(); st.Applied != 1 {
		t.Fatalf("delta stats: %+v (the lying hint cost the layer its delta)", st)
	}
	// The hint itself may have brought the whole layer before the walk
	// refused it (as an unreached hint's bytes are read for nothing);
	// never more than that and the patch.
	if moved := link.Down() - before; moved > newL.Desc.Size+sum.DeltaBytes+64<<10 {
		t.Fatalf("the link carried %d bytes for a %d-byte layer made from a %d-byte patch", moved, newL.Desc.Size, sum.DeltaBytes)
	}
}
