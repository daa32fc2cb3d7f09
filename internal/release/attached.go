package release

import (
	"context"
	"errors"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// AttachedResult is one signature, attestation or SBOM that an image
// already had upstream, carried in the bundle as an entry of its own.
type AttachedResult struct {
	Ref     string `json:"ref"`     // where it is stored: <image repo>:sha256-<hex>.sig@<digest>
	Kind    string `json:"kind"`    // bundle.Attached*: sig, att, sbom
	Subject string `json:"subject"` // the image's digest
	Digest  string `json:"digest"`
	Bytes   int64  `json:"bytes"` // manifest + blob bytes
}

// attachedKinds maps cosign's tag suffixes to attachment kinds.
var attachedKinds = []struct{ suffix, kind string }{
	{".sig", bundle.AttachedSignature},
	{".att", bundle.AttachedAttestation},
	{".sbom", bundle.AttachedSBOM},
}

// findAttached looks up, for every image, what cosign attached to it in
// its source repository (tags sha256-<hex>.sig, .att, .sbom) and returns
// them as bundle entries with their sources and sizes. An absent tag is
// the usual case and no error.
func findAttached(ctx context.Context, eng *transfer.Engine, images []bundle.Image, srcs []transfer.Source) ([]bundle.Image, []transfer.Source, []int64, error) {
	type found struct {
		im   bundle.Image
		src  transfer.Source
		size int64
	}
	out := make([][]found, len(images)*len(attachedKinds))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, im := range images {
		if im.Chart != nil || im.Attached != nil {
			continue
		}
		for k, ak := range attachedKinds {
			g.Go(func() error {
				tag := trust.Tag(im.Descriptor.Digest, ak.suffix)
				d, err := eng.Resolve(gctx, srcs[i], tag)
				if errors.Is(err, transfer.ErrNotFound) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
				}
				if !oci.IsManifest(d.MediaType) {
					return nil // not what cosign writes: leave it
				}
				raw, err := eng.FetchManifest(gctx, srcs[i], d)
				if err != nil {
					return fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
				}
				_, blobs, err := oci.Children(raw, d.MediaType, nil)
				if err != nil {
					return fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
				}
				size := d.Size
				for _, b := range blobs {
					size += b.Size
				}
				ref, err := imageref.Parse(im.Ref.Name() + ":" + tag + "@" + d.Digest.String())
				if err != nil {
					return fmt.Errorf("image %s: %s: %w", im.Ref, tag, err)
				}
				out[i*len(attachedKinds)+k] = []found{{
					im:  bundle.Image{Ref: ref, Descriptor: v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}, Attached: &bundle.Attachment{Kind: ak.kind, Subject: im.Descriptor.Digest}},
					src: srcs[i], size: size,
				}}
				return nil
			})
		}
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
