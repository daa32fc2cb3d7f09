package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// MaxFormat is the highest patch format this package makes and applies.
const MaxFormat = 2

// Option configures Make.
type Option func(*makeOptions) error

type makeOptions struct{ maxFormat int }

// WithMaxFormat makes Make use no patch format above n (1 or 2; the
// default is MaxFormat): 1 for edges that know only format 1, which
// refuse a delta index listing a format 2 delta.
func WithMaxFormat(n int) Option {
	return func(o *makeOptions) error {
		if n < 1 || n > MaxFormat {
			return fmt.Errorf("delta: patch format %d: want 1..%d", n, MaxFormat)
		}
		o.maxFormat = n
		return nil
	}
}

// Content decompresses a layer blob held in memory, at most MaxContent
// bytes of content, and returns the layer as Layer with the content.
func Content(d v1.Descriptor, blob []byte) (Layer, []byte, error) {
	l := Layer{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType}
	format := FormatOf(d.MediaType)
	if format == "" {
		return l, nil, fmt.Errorf("layer %s: media type %q not handled", d.Digest, d.MediaType)
	}
	zr, err := Decompress(format, bytes.NewReader(blob))
	if err != nil {
		return l, nil, fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	defer zr.Close()
	content, err := io.ReadAll(io.LimitReader(zr, MaxContent+1))
	if err != nil {
		return l, nil, fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	if len(content) > MaxContent {
		return l, nil, fmt.Errorf("layer %s: %w (more than %d bytes)", d.Digest, ErrTooLarge, MaxContent)
	}
	l.Content = int64(len(content))
	l.DiffID = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(content))}
	return l, content, nil
}

// Make computes the delta that makes the target layer blob from the base
// layer blob (both as stored, with their descriptors; digests are trusted
// here, the caller fetched them verified). It detects the target's recipe
// (ErrNotReproducible when there is none: the layer goes whole), creates
// the patch and applies it once as the edge will, so only a delta that
// round-trips to the exact target digest is returned (a format 2 patch
// that does not is made again in format 1). The returned Delta's Patch
// descriptor and Version are set; baseImage names where the edge finds
// the base.
func Make(ctx context.Context, base v1.Descriptor, baseBlob []byte, target v1.Descriptor, targetBlob []byte, baseImage string, opts ...Option) (*Delta, []byte, error) {
	o := makeOptions{maxFormat: MaxFormat}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, nil, err
		}
	}
	tl, tc, err := Content(target, targetBlob)
	if err != nil {
		return nil, nil, err
	}
	recipe, err := Detect(FormatOf(target.MediaType), targetBlob, tc)
	if err != nil {
		return nil, nil, fmt.Errorf("layer %s: %w", target.Digest, err)
	}
	bl, bc, err := Content(base, baseBlob)
	if err != nil {
		return nil, nil, err
	}
	patch, version, probe, err := create(bc, tc, o.maxFormat >= 2)
	if err != nil {
		return nil, nil, err
	}
	d := &Delta{Target: tl, Base: bl, BaseImage: baseImage, Recipe: recipe, Version: version, BaseZlib: probe}
	d.setPatch(patch)
	// The base's own recipe lets the edge check its compressor before
	// the patch crosses the link (ProbeBase). Candidates like the
	// target's first: a base and its update usually share a builder.
	if Reproduces(recipe, baseBlob, bc) {
		d.BaseRecipe = &recipe
	} else if br, err := Detect(FormatOf(base.MediaType), baseBlob, bc); err == nil {
		d.BaseRecipe = &br
	}
	err = Reconstruct(ctx, d, bc, bytes.NewReader(patch), io.Discard)
	if err != nil && version > 1 {
		// Format 2 checks every stream it expands; should the whole
		// still not round-trip, format 1 may.
		if patch, version, _, err = create(bc, tc, false); err != nil {
			return nil, nil, err
		}
		d.Version, d.BaseZlib = version, nil
		d.setPatch(patch)
		err = Reconstruct(ctx, d, bc, bytes.NewReader(patch), io.Discard)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("layer %s: the delta does not round-trip: %w", target.Digest, err)
	}
	return d, patch, nil
}

// setPatch sets d's patch descriptor for the patch bytes.
func (d *Delta) setPatch(patch []byte) {
	h, n, _ := v1.SHA256(bytes.NewReader(patch))
	d.Patch = v1.Descriptor{MediaType: d.patchMediaType(), Digest: h, Size: n}
}
