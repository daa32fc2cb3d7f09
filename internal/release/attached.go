package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// AttachedResult is one signature, attestation, SBOM or set of OCI 1.1
// referrers that an image already had upstream, carried in the bundle as
// an entry of its own.
type AttachedResult struct {
	Ref     string `json:"ref"`     // where it is stored: <image repo>:sha256-<hex>.sig@<digest>
	Kind    string `json:"kind"`    // bundle.Attached*: sig, att, sbom, referrer
	Subject string `json:"subject"` // the image's digest
	Digest  string `json:"digest"`
	Bytes   int64  `json:"bytes"` // manifest + blob bytes (for referrers: the index and what it lists)
}

// attachedKinds maps cosign's tag suffixes to attachment kinds.
var attachedKinds = []struct{ suffix, kind string }{
	{".sig", bundle.AttachedSignature},
	{".att", bundle.AttachedAttestation},
	{".sbom", bundle.AttachedSBOM},
}

// referrerLister is a source that can list OCI 1.1 referrers
// (*registryclient.Remote).
type referrerLister interface {
	Referrers(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, error)
}

type attached struct {
	im   bundle.Image
	src  transfer.Source
	size int64
}

// findAttached looks up, for every image, what is attached to it in its
// source repository and returns each as a bundle entry with its source
// and size: cosign's tags sha256-<hex>.sig, .att and .sbom, and its OCI
// 1.1 referrers, which are carried as a referrers index tagged
// sha256-<hex> (the referrers tag schema, which clients read where a
// registry has no referrers API, as the edge registry has not): built
// from the referrers API where the source registry has it, else the
// source's own index under that tag when there is one. An absent tag is
// the usual case and no error.
func findAttached(ctx context.Context, eng *transfer.Engine, images []bundle.Image, srcs []transfer.Source) ([]bundle.Image, []transfer.Source, []int64, error) {
	out := make([][]attached, len(images))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, im := range images {
		if im.Chart != nil || im.Attached != nil {
			continue
		}
		g.Go(func() error {
			found, err := attachedOf(gctx, eng, im, srcs[i])
			out[i] = found
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, err
	}
	var ims []bundle.Image
	var ss []transfer.Source
	var sizes []int64
	for _, fs := range out {
		for _, f := range fs {
			ims, ss, sizes = append(ims, f.im), append(ss, f.src), append(sizes, f.size)
		}
	}
	return ims, ss, sizes, nil
}

func attachedOf(ctx context.Context, eng *transfer.Engine, im bundle.Image, src transfer.Source) ([]attached, error) {
	var out []attached
	entry := func(tag, kind string, d v1.Descriptor, raw []byte, s transfer.Source) error {
		size := d.Size
		ms, blobs, err := oci.Children(raw, d.MediaType, nil)
		if err != nil {
			return fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
		}
		for _, b := range blobs {
			size += b.Size
		}
		for _, m := range ms {
			mraw, err := eng.FetchManifest(ctx, s, m)
			if err != nil {
				return fmt.Errorf("image %s: %s: %s: %w", im.Ref, tag, m.Digest, err)
			}
			_, mblobs, err := oci.Children(mraw, m.MediaType, nil)
			if err != nil {
				return fmt.Errorf("image %s: %s: %s: %w", im.Ref, tag, m.Digest, err)
			}
			size += m.Size
			for _, b := range mblobs {
				size += b.Size
			}
		}
		ref, err := imageref.Parse(im.Ref.Name() + ":" + tag + "@" + d.Digest.String())
		if err != nil {
			return fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
		}
		out = append(out, attached{
			im:  bundle.Image{Ref: ref, Descriptor: v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}, Attached: &bundle.Attachment{Kind: kind, Subject: im.Descriptor.Digest}},
			src: s, size: size,
		})
		return nil
	}
	byTag := func(tag string) (v1.Descriptor, []byte, error) {
		d, err := eng.Resolve(ctx, src, tag)
		if err != nil {
			return v1.Descriptor{}, nil, err
		}
		raw, err := eng.FetchManifest(ctx, src, d)
		return d, raw, err
	}
	for _, ak := range attachedKinds {
		tag := trust.Tag(im.Descriptor.Digest, ak.suffix)
		d, raw, err := byTag(tag)
		if errors.Is(err, transfer.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
		}
		if !oci.IsManifest(d.MediaType) {
			continue // not what cosign writes: leave it
		}
		if err := entry(tag, ak.kind, d, raw, src); err != nil {
			return nil, err
		}
	}

	// OCI 1.1 referrers: the API where there is one, else the tag schema.
	tag := trust.Tag(im.Descriptor.Digest, "")
	if rl, ok := src.(referrerLister); ok {
		refs, err := rl.Referrers(ctx, im.Descriptor.Digest)
		switch {
		case err == nil && len(refs) == 0:
			return out, nil
		case err == nil:
			raw, d, err := referrersIndex(refs)
			if err != nil {
				return nil, fmt.Errorf("image %s: referrers: %w", im.Ref, err)
			}
			return out, entry(tag, bundle.AttachedReferrer, d, raw, withManifest{Source: src, d: d, raw: raw})
		case !errors.Is(err, registryclient.ErrNoReferrersAPI):
			return nil, fmt.Errorf("image %s: %w", im.Ref, err)
		}
	}
	d, raw, err := byTag(tag)
	if errors.Is(err, transfer.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
	}
	if !oci.IsIndex(d.MediaType) {
		return out, nil // not a referrers index: leave it
	}
	return out, entry(tag, bundle.AttachedReferrer, d, raw, src)
}

// referrersIndex builds the image index the referrers tag schema stores
// for a subject: its referrers' descriptors, sorted by digest so the same
// referrers give the same index.
func referrersIndex(refs []v1.Descriptor) ([]byte, v1.Descriptor, error) {
	ms := append([]v1.Descriptor(nil), refs...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Digest.String() < ms[j].Digest.String() })
	raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ms})
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	h, n, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return raw, v1.Descriptor{MediaType: types.OCIImageIndex, Size: n, Digest: h}, nil
}

// withManifest is a source that also serves one manifest built in memory
// (a referrers index), its children from the underlying source.
type withManifest struct {
	transfer.Source
	d   v1.Descriptor
	raw []byte
}

func (s withManifest) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Digest == s.d.Digest {
		return s.raw, nil
	}
	return s.Source.FetchManifest(ctx, d)
}

func attachedResults(ims []bundle.Image, sizes []int64) ([]AttachedResult, int64) {
	var out []AttachedResult
	var total int64
	for i, im := range ims {
		out = append(out, AttachedResult{Ref: im.Ref.String(), Kind: im.Attached.Kind, Subject: im.Attached.Subject.String(),
			Digest: im.Descriptor.Digest.String(), Bytes: sizes[i]})
		total += sizes[i]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, total
}
