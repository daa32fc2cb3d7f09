package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// DefaultDeltaBases is how many earlier revisions' bundles serve as delta
// bases by default: as many as an edge keeps by default (keepRevisions).
const DefaultDeltaBases = 5

// DeltaSummary is what PublishDeltas did: per layer of the revision that
// no base bundle has (a changed layer), a delta or the reason it goes whole.
type DeltaSummary struct {
	Bases           []string `json:"bases"`           // revisions whose bundles were found and used
	ChangedLayers   int      `json:"changedLayers"`   // layers no base bundle has
	ChangedBytes    int64    `json:"changedBytes"`    // their compressed bytes
	Deltas          int      `json:"deltas"`          // deltas published
	DeltaBytes      int64    `json:"deltaBytes"`      // patch bytes of the deltas published
	DeltaLayerBytes int64    `json:"deltaLayerBytes"` // compressed bytes of the layers they make
	// Expanded counts the deltas of patch format 2: they expand the
	// zlib-compressed sections of ELF files (Go's default DWARF).
	Expanded int `json:"expanded"`
	// Whole counts changed layers without a delta, by reason:
	// "no-base" (no layer of the same image to start from),
	// "not-reproducible" (no known recipe makes its compressed bytes),
	// "too-large" (content above delta.MaxContent), "not-smaller" (the
	// patch saves less than 1 %), "media-type" (not a tar layer).
	Whole map[string]int `json:"whole,omitempty"`
	Index string         `json:"index,omitempty"` // the delta index's digest
	// Present: the revision's delta index was already in the repository
	// (a re-run); nothing was computed.
	Present  bool    `json:"present,omitempty"`
	Duration float64 `json:"seconds"`
}

// DeltaTarget is where PublishDeltas reads the bundles and writes the
// deltas: the bundles repository.
type DeltaTarget interface {
	transfer.Source
	transfer.Target
}

// layerSlot names where a layer sits: image name, platform, position.
type layerSlot struct {
	image, platform string
	pos             int
}

type bundleLayer struct {
	slot layerSlot
	d    v1.Descriptor
}

// PublishDeltas computes, for every layer of revision's bundle (already in
// repo) that none of the bundles of bases (earlier revisions; missing ones
// are skipped) holds, a delta against the layer in the same place of the
// newest base that has one (same image name, platform and position; else
// the layer of that image and platform closest in size), and pushes each
// delta that round-trips exactly and saves at least 1 %, then the delta
// index tagged delta.IndexTag(revision). A layer without a delta goes
// whole; the summary says why. Deltas are an optimization: a failure to
// make one is counted, only a failure to read or write repo is an error.
// opts go to delta.Make (delta.WithMaxFormat).
func PublishDeltas(ctx context.Context, eng *transfer.Engine, repo DeltaTarget, revision string, images []bundle.Image, bases []string, log *slog.Logger, opts ...delta.Option) (*DeltaSummary, error) {
	start := time.Now()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sum := &DeltaSummary{Whole: map[string]int{}, Bases: []string{}}
	// Deltas are made once per revision: a re-run finds the index.
	if d, _, err := eng.ResolveManifest(ctx, repo, delta.IndexTag(revision)); err == nil {
		sum.Index, sum.Present = d.Digest.String(), true
		return sum, nil
	} else if !errors.Is(err, transfer.ErrNotFound) {
		return nil, fmt.Errorf("delta index: %w", err)
	}
	newLayers, err := bundleLayers(ctx, eng, repo, images)
	if err != nil {
		return nil, err
	}
	have := map[v1.Hash]bool{}
	var baseLayers [][]bundleLayer // newest base first
	for _, b := range bases {
		d, raw, err := eng.ResolveManifest(ctx, repo, b)
		if errors.Is(err, transfer.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("delta base %s: %w", b, err)
		}
		bb, err := bundle.Parse(raw)
		if err != nil {
			log.Warn("delta base: not a bundle", "revision", b, "digest", d.Digest.String(), "err", err)
			continue
		}
		ls, err := bundleLayers(ctx, eng, repo, bb.Images)
		if err != nil {
			return nil, fmt.Errorf("delta base %s: %w", b, err)
		}
		for _, l := range ls {
			have[l.d.Digest] = true
		}
		baseLayers = append(baseLayers, ls)
		sum.Bases = append(sum.Bases, b)
	}
	var entries []v1.Descriptor
	done := map[v1.Hash]bool{}
	for _, nl := range newLayers {
		if have[nl.d.Digest] || done[nl.d.Digest] {
			continue
		}
		done[nl.d.Digest] = true
		sum.ChangedLayers++
		sum.ChangedBytes += nl.d.Size
		if delta.FormatOf(nl.d.MediaType) == "" {
			sum.Whole["media-type"]++
			continue
		}
		base, ok := pickBase(nl, baseLayers)
		if !ok {
			sum.Whole["no-base"]++
			continue
		}
		desc, reason, err := makeDelta(ctx, eng, repo, nl, base, opts)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			sum.Whole[reason]++
			log.Info("layer goes whole", "layer", nl.d.Digest.String(), "image", nl.slot.image, "reason", reason)
			continue
		}
		sum.Deltas++
		patch, _ := delta.FromAnnotations(desc.Annotations)
		sum.DeltaBytes += patch.Patch.Size
		sum.DeltaLayerBytes += nl.d.Size
		if desc.ArtifactType == delta.ArtifactTypeV2 {
			sum.Expanded++
		}
		entries = append(entries, desc)
		log.Info("delta published", "layer", nl.d.Digest.String(), "image", nl.slot.image, "base", base.d.Digest.String(),
			"bytes", patch.Patch.Size, "of", nl.d.Size)
	}
	if len(entries) > 0 {
		raw, d, err := delta.BuildIndex(revision, entries)
		if err != nil {
			return nil, err
		}
		if _, err := eng.Copy(ctx, transfer.Job{Src: transfer.ManifestSource(raw, d), Dst: repo, Root: d, Tags: []string{delta.IndexTag(revision)}, RootOnly: true}); err != nil {
			return nil, fmt.Errorf("write delta index: %w", err)
		}
		sum.Index = d.Digest.String()
	}
	sum.Duration = time.Since(start).Seconds()
	return sum, nil
}

// pickBase finds the base layer for nl in the newest base bundle that has
// its image and platform.
func pickBase(nl bundleLayer, bases [][]bundleLayer) (bundleLayer, bool) {
	for _, ls := range bases {
		var best bundleLayer
		found := false
		for _, l := range ls {
			if l.slot.image != nl.slot.image || l.slot.platform != nl.slot.platform || delta.FormatOf(l.d.MediaType) == "" {
				continue
			}
			if l.slot.pos == nl.slot.pos {
				return l, true
			}
			if !found || absDiff(l.d.Size, nl.d.Size) < absDiff(best.d.Size, nl.d.Size) {
				best, found = l, true
			}
		}
		if found {
			return best, true
		}
	}
	return bundleLayer{}, false
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// maxDeltaBlob bounds the compressed layers read for a delta, in bytes.
const maxDeltaBlob = delta.MaxContent

// makeDelta makes and pushes the delta of nl against base; reason says why
// there is none.
func makeDelta(ctx context.Context, eng *transfer.Engine, repo DeltaTarget, nl, base bundleLayer, opts []delta.Option) (v1.Descriptor, string, error) {
	if nl.d.Size > maxDeltaBlob || base.d.Size > maxDeltaBlob {
		return v1.Descriptor{}, "too-large", nil
	}
	tb, err := readBlob(ctx, repo, nl.d)
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	bb, err := readBlob(ctx, repo, base.d)
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	d, patch, err := delta.Make(ctx, base.d, bb, nl.d, tb, base.slot.image, opts...)
	switch {
	case errors.Is(err, delta.ErrNotReproducible):
		return v1.Descriptor{}, "not-reproducible", nil
	case errors.Is(err, delta.ErrTooLarge):
		return v1.Descriptor{}, "too-large", nil
	case err != nil:
		return v1.Descriptor{}, "", err
	}
	raw, desc, err := delta.BuildManifest(d)
	if err != nil {
		return v1.Descriptor{}, "", err
	}
	// Never worse than the whole blob by more than 1 %: the patch and its
	// manifest must save at least that.
	if float64(d.Patch.Size+int64(len(raw))) > 0.99*float64(nl.d.Size) {
		return v1.Descriptor{}, "not-smaller", nil
	}
	src := &memContent{manifests: map[v1.Hash][]byte{desc.Digest: raw}, blobs: map[v1.Hash][]byte{
		d.Patch.Digest: patch, delta.EmptyDescriptor().Digest: delta.EmptyDescriptor().Data}}
	if _, err := eng.Copy(ctx, transfer.Job{Src: src, Dst: repo, Root: desc}); err != nil {
		return v1.Descriptor{}, "", fmt.Errorf("push delta of %s: %w", nl.d.Digest, err)
	}
	return desc, "", nil
}

func readBlob(ctx context.Context, src transfer.Source, d v1.Descriptor) ([]byte, error) {
	rc, err := src.OpenBlob(ctx, d, 0)
	if err != nil {
		return nil, fmt.Errorf("read layer %s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(oci.VerifyReader(rc, d))
	if err != nil {
		return nil, fmt.Errorf("read layer %s: %w", d.Digest, err)
	}
	return b, nil
}

// bundleLayers lists the layers of every image manifest the images reach
// (all platforms), with where each sits.
func bundleLayers(ctx context.Context, eng *transfer.Engine, src transfer.Source, images []bundle.Image) ([]bundleLayer, error) {
	var out []bundleLayer
	for _, im := range images {
		if im.Chart != nil {
			continue
		}
		name := im.Ref.Name()
		err := oci.Walk(ctx, engineFetcher{eng, src}, im.Descriptor, nil, func(n oci.Node) error {
			if n.Raw == nil || !oci.IsManifest(n.Descriptor.MediaType) {
				return nil
			}
			var m v1.Manifest
			if err := json.Unmarshal(n.Raw, &m); err != nil {
				return fmt.Errorf("manifest %s: %w", n.Descriptor.Digest, err)
			}
			plat := ""
			if p := n.Descriptor.Platform; p != nil {
				plat = p.String()
			}
			for i, l := range m.Layers {
				out = append(out, bundleLayer{slot: layerSlot{image: name, platform: plat, pos: i}, d: v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Ref, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].slot.image < out[j].slot.image })
	return out, nil
}

type engineFetcher struct {
	e   *transfer.Engine
	src transfer.Source
}

func (f engineFetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.e.FetchManifest(ctx, f.src, d)
}

// memContent serves one delta's manifest and blobs from memory.
type memContent struct {
	manifests map[v1.Hash][]byte
	blobs     map[v1.Hash][]byte
}

func (m *memContent) Resolve(context.Context, string) (v1.Descriptor, error) {
	return v1.Descriptor{}, transfer.ErrNotFound
}

func (m *memContent) FetchManifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	if b, ok := m.manifests[d.Digest]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("manifest %s: %w", d.Digest, transfer.ErrNotFound)
}

func (m *memContent) OpenBlob(_ context.Context, d v1.Descriptor, off int64) (io.ReadCloser, error) {
	b, ok := m.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, transfer.ErrNotFound)
	}
	if off < 0 || off > int64(len(b)) {
		return nil, fmt.Errorf("blob %s: offset %d out of range", d.Digest, off)
	}
	return io.NopCloser(bytes.NewReader(b[off:])), nil
}

// FirstParents lists up to n first-parent ancestors of sha, nearest first,
// sha itself excluded: the revisions whose bundles an edge tracking the
// same branch keeps.
func FirstParents(ctx context.Context, repoDir, sha string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	out, err := git(ctx, repoDir, "rev-list", "--first-parent", fmt.Sprintf("--max-count=%d", n+1), sha)
	if err != nil {
		return nil, err
	}
	var revs []string
	for _, l := range strings.Fields(out) {
		if l != sha && fullSHA.MatchString(l) {
			revs = append(revs, l)
		}
	}
	return revs, nil
}
