package oci

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Children parses one manifest or index (raw, of media type mt) and returns
// what it references directly: child manifests (of an index, filtered by
// sel) and blobs (config and layers of a manifest). An index that has image
// entries of which sel selects none is an error wrapping ErrNoPlatform
// that names the platforms it has. Subjects are not
// followed, and non-distributable layers (with URLs or a foreign media type)
// are left out: registries do not hold them.
func Children(raw []byte, mt types.MediaType, sel Platforms) (manifests, blobs []v1.Descriptor, err error) {
	if len(raw) > MaxManifestSize {
		return nil, nil, fmt.Errorf("manifest of %d bytes exceeds the %d byte limit", len(raw), MaxManifestSize)
	}
	switch {
	case IsIndex(mt):
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, nil, fmt.Errorf("parse index: %w", err)
		}
		var candidates []v1.Descriptor
		for i, d := range idx.Manifests {
			if !IsIndex(d.MediaType) && !IsManifest(d.MediaType) {
				// Artifacts that are neither (rare) are copied as blobs
				// would be by no tool; skip them rather than fail.
				continue
			}
			if err := CheckDigest(d.Digest); err != nil {
				return nil, nil, fmt.Errorf("index manifests[%d]: %w", i, err)
			}
			if d.Size <= 0 || d.Size > MaxManifestSize {
				return nil, nil, fmt.Errorf("index manifests[%d]: size %d out of range", i, d.Size)
			}
			candidates = append(candidates, d)
			if sel.Match(d.Platform) {
				manifests = append(manifests, d)
			}
		}
		if len(manifests) == 0 && len(candidates) > 0 {
			return nil, nil, noPlatformError(raw, sel, candidates)
		}
		return manifests, nil, nil
	case IsManifest(mt):
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, nil, fmt.Errorf("parse manifest: %w", err)
		}
		all := append([]v1.Descriptor{m.Config}, m.Layers...)
		for i, d := range all {
			if len(d.URLs) > 0 || d.MediaType == types.DockerForeignLayer {
				continue
			}
			if err := CheckDigest(d.Digest); err != nil {
				return nil, nil, fmt.Errorf("manifest blob %d: %w", i, err)
			}
			if d.Size < 0 {
				return nil, nil, fmt.Errorf("manifest blob %d: negative size", i)
			}
			blobs = append(blobs, d)
		}
		return nil, blobs, nil
	default:
		return nil, nil, fmt.Errorf("media type %q is not an image manifest or index", mt)
	}
}

// ManifestFetcher reads a manifest's raw bytes by descriptor.
type ManifestFetcher interface {
	FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
}

// Node is one piece of content reached by a walk.
type Node struct {
	Descriptor v1.Descriptor
	Raw        []byte // the manifest's bytes; nil for blobs
	Parent     *v1.Descriptor
}

// Walk visits root and everything it reaches for the platform selection,
// depth first, children before their parent (the order a writer must
// follow). Fetched manifests are checked against their descriptor's digest
// and size. Blobs shared by several manifests are visited once per parent.
func Walk(ctx context.Context, f ManifestFetcher, root v1.Descriptor, sel Platforms, visit func(Node) error) error {
	return walk(ctx, f, root, nil, sel, visit, 0)
}

func walk(ctx context.Context, f ManifestFetcher, d v1.Descriptor, parent *v1.Descriptor, sel Platforms, visit func(Node) error, depth int) error {
	if depth > 4 {
		return fmt.Errorf("manifest %s: indexes nested too deep", d.Digest)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	raw, err := f.FetchManifest(ctx, d)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if err := VerifyBytes(raw, d); err != nil {
		return err
	}
	ms, bs, err := Children(raw, d.MediaType, sel)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	for _, c := range ms {
		if err := walk(ctx, f, c, &d, sel, visit, depth+1); err != nil {
			return err
		}
	}
	for _, b := range bs {
		if err := visit(Node{Descriptor: b, Parent: &d}); err != nil {
			return err
		}
	}
	return visit(Node{Descriptor: d, Raw: raw, Parent: parent})
}
