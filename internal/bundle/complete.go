package bundle

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
)

// Presence is what a completeness check needs to know about a registry (or
// any store): raw manifests by digest, blob sizes, and tags. Implementations
// return an error wrapping oci.ErrNotFound for absent content; any other error
// means "could not tell" and aborts the check.
type Presence interface {
	Manifest(ctx context.Context, repo string, digest v1.Hash) ([]byte, error)
	BlobSize(ctx context.Context, repo string, digest v1.Hash) (int64, error)
	Tag(ctx context.Context, repo, tag string) (v1.Hash, error)
}

// Placement says in which repository each part of a bundle lives (upstream:
// everything in the bundles repository; at the edge: each image under its
// own name) and whether image tags are part of completeness. It was called
// Layout, which collided with the OCI image layout (internal/oci/layout).
type Placement struct {
	// BundleRepo holds the bundle index, tagged with the revision.
	BundleRepo string
	// ImageRepo returns the repository holding an image's content. Nil
	// means BundleRepo (the upstream layout).
	ImageRepo func(imageref.Ref) string
	// CheckTags requires each image's tag (if its reference has one) to
	// resolve to the recorded digest in ImageRepo (the edge layout).
	CheckTags bool
}

// Missing is one reason a bundle is not complete.
type Missing struct {
	Repo   string `json:"repo"`
	Image  string `json:"image,omitempty"`
	Digest string `json:"digest,omitempty"`
	What   string `json:"what"` // "bundle index", "manifest", "blob", "tag"
	Detail string `json:"detail,omitempty"`
}

func (m Missing) String() string {
	s := m.What + " " + m.Repo
	if m.Digest != "" {
		s += "@" + m.Digest
	}
	if m.Image != "" {
		s += " (image " + m.Image + ")"
	}
	if m.Detail != "" {
		s += ": " + m.Detail
	}
	return s
}

// Report is the result of a completeness check.
type Report struct {
	Revision string  `json:"revision"`
	Bundle   *Bundle `json:"-"`
	// Index is the bundle index's descriptor when it was found.
	Index   v1.Descriptor `json:"-"`
	Missing []Missing     `json:"missing,omitempty"`
	Blobs   int           `json:"blobs"`
	Bytes   int64         `json:"bytes"`
}

// Complete reports whether nothing is missing.
func (r *Report) Complete() bool { return r.Bundle != nil && len(r.Missing) == 0 }

// maxMissing bounds a report on a badly incomplete bundle.
const maxMissing = 100

// CheckComplete is the one definition of a complete bundle (DESIGN.md): the
// bundle index for revision is present in pl.BundleRepo; every manifest and
// blob it reaches for the selected platforms is present with matching digest
// and size; with pl.CheckTags every image tag resolves to its recorded
// digest. Blobs are checked for presence and size (the writer verified their
// digests); manifests are re-hashed, as they are read anyway. An error is
// returned only when presence could not be determined.
func CheckComplete(ctx context.Context, p Presence, pl Placement, revision string, sel oci.Platforms) (*Report, error) {
	r := &Report{Revision: revision}
	dig, err := p.Tag(ctx, pl.BundleRepo, revision)
	if errors.Is(err, oci.ErrNotFound) {
		r.Missing = append(r.Missing, Missing{Repo: pl.BundleRepo + ":" + revision, What: "bundle index"})
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s:%s: %w", pl.BundleRepo, revision, err)
	}
	raw, err := p.Manifest(ctx, pl.BundleRepo, dig)
	if errors.Is(err, oci.ErrNotFound) {
		r.Missing = append(r.Missing, Missing{Repo: pl.BundleRepo, Digest: dig.String(), What: "bundle index"})
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s@%s: %w", pl.BundleRepo, dig, err)
	}
	if err := oci.VerifyBytes(raw, v1.Descriptor{Digest: dig, Size: int64(len(raw))}); err != nil {
		r.Missing = append(r.Missing, Missing{Repo: pl.BundleRepo, Digest: dig.String(), What: "bundle index", Detail: err.Error()})
		return r, nil
	}
	b, err := Parse(raw)
	if err != nil {
		r.Missing = append(r.Missing, Missing{Repo: pl.BundleRepo, Digest: dig.String(), What: "bundle index", Detail: err.Error()})
		return r, nil
	}
	if b.Revision != revision {
		r.Missing = append(r.Missing, Missing{Repo: pl.BundleRepo, Digest: dig.String(), What: "bundle index",
			Detail: fmt.Sprintf("records revision %s", b.Revision)})
		return r, nil
	}
	r.Bundle = b
	r.Index = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: dig, Size: int64(len(raw))}
	for _, im := range b.Images {
		repo := pl.BundleRepo
		if pl.ImageRepo != nil {
			repo = pl.ImageRepo(im.Ref)
		}
		if err := checkImage(ctx, p, r, repo, im, sel); err != nil {
			return nil, err
		}
		if len(r.Missing) >= maxMissing {
			break
		}
		if pl.CheckTags && im.Ref.Tag != "" {
			got, err := p.Tag(ctx, repo, im.Ref.Tag)
			switch {
			case errors.Is(err, oci.ErrNotFound):
				r.Missing = append(r.Missing, Missing{Repo: repo + ":" + im.Ref.Tag, Image: im.Ref.String(), What: "tag"})
			case err != nil:
				return nil, fmt.Errorf("tag %s:%s: %w", repo, im.Ref.Tag, err)
			case got != im.Descriptor.Digest:
				r.Missing = append(r.Missing, Missing{Repo: repo + ":" + im.Ref.Tag, Image: im.Ref.String(), What: "tag",
					Detail: fmt.Sprintf("points to %s, want %s", got, im.Descriptor.Digest)})
			}
		}
	}
	return r, nil
}

func checkImage(ctx context.Context, p Presence, r *Report, repo string, im Image, sel oci.Platforms) error {
	seen := map[v1.Hash]bool{}
	// Walk children one manifest at a time so an absent or damaged
	// manifest is reported, not fatal.
	var visit func(d v1.Descriptor, depth int) error
	visit = func(d v1.Descriptor, depth int) error {
		raw, err := p.Manifest(ctx, repo, d.Digest)
		if errors.Is(err, oci.ErrNotFound) {
			r.Missing = append(r.Missing, Missing{Repo: repo, Image: im.Ref.String(), Digest: d.Digest.String(), What: "manifest"})
			return nil
		}
		if err != nil {
			return fmt.Errorf("manifest %s@%s: %w", repo, d.Digest, err)
		}
		if err := oci.VerifyBytes(raw, d); err != nil {
			r.Missing = append(r.Missing, Missing{Repo: repo, Image: im.Ref.String(), Digest: d.Digest.String(), What: "manifest", Detail: err.Error()})
			return nil
		}
		ms, bs, err := oci.Children(raw, d.MediaType, sel)
		if err != nil {
			r.Missing = append(r.Missing, Missing{Repo: repo, Image: im.Ref.String(), Digest: d.Digest.String(), What: "manifest", Detail: err.Error()})
			return nil
		}
		if depth > 4 {
			r.Missing = append(r.Missing, Missing{Repo: repo, Image: im.Ref.String(), Digest: d.Digest.String(), What: "manifest", Detail: "indexes nested too deep"})
			return nil
		}
		for _, c := range ms {
			if err := visit(c, depth+1); err != nil {
				return err
			}
		}
		for _, b := range bs {
			if seen[b.Digest] {
				continue
			}
			seen[b.Digest] = true
			size, err := p.BlobSize(ctx, repo, b.Digest)
			switch {
			case errors.Is(err, oci.ErrNotFound):
				r.Missing = append(r.Missing, Missing{Repo: repo, Image: im.Ref.String(), Digest: b.Digest.String(), What: "blob"})
			case err != nil:
				return fmt.Errorf("blob %s@%s: %w", repo, b.Digest, err)
			case size != b.Size:
				r.Missing = append(r.Missing, Missing{Repo: repo, Image: im.Ref.String(), Digest: b.Digest.String(), What: "blob",
					Detail: fmt.Sprintf("size %d, want %d", size, b.Size)})
			default:
				r.Blobs++
				r.Bytes += size
			}
		}
		return nil
	}
	return visit(im.Descriptor, 0)
}
