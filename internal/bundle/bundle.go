// Package bundle defines the ballast bundle format (DESIGN.md, "Bundle
// format"): the OCI image index tagged with a git revision that lists every
// image the revision needs, and the one definition of a complete bundle. It
// sits on the generic OCI layer (internal/oci: digests, graph walk,
// platforms). It is edge-safe: no rendering, no network; callers supply the
// I/O behind small interfaces.
package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
)

// Format constants of the bundle index.
const (
	// ArtifactType marks an OCI image index as a ballast bundle.
	ArtifactType = "application/vnd.ballast.bundle.v1+json"
	// AnnotationRevision holds the full 40-hex git commit SHA.
	AnnotationRevision = "org.opencontainers.image.revision"
	// AnnotationSource holds the git URL; omitted without an origin remote.
	AnnotationSource = "org.opencontainers.image.source"
	// AnnotationCreated holds the RFC 3339 creation time.
	AnnotationCreated = "org.opencontainers.image.created"
	// AnnotationImageRef holds the fully qualified original image reference
	// of one entry of manifests[].
	AnnotationImageRef = "io.ballast.image.ref"
)

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// IsRevision reports whether s is a revision as bundles record it: a full
// 40-hex lowercase git commit SHA.
func IsRevision(s string) bool { return shaRE.MatchString(s) }

// Image is one entry of a bundle: an image's manifest or index by its
// original digest, and the reference it was found under. A Helm chart or an
// Argo CD OCI source is an entry too: Ref is where it is stored and Chart
// says what it is (nil for an image).
//
// What an image already has attached upstream (cosign signatures,
// attestations, SBOMs) is an entry too: Ref is where it is stored (the
// image's repository, under cosign's tag) and Attached says of which
// image it is (nil otherwise).
type Image struct {
	Ref        imageref.Ref
	Descriptor v1.Descriptor
	Chart      *Chart
	Attached   *Attachment
	// Blobs are, for Build, the blobs the entry reaches, written as its
	// AnnotationBlobs hint (none when empty). Parse leaves them nil: read
	// a parsed bundle's hints with BlobHints.
	Blobs []BlobHint
}

// Name is how reports name the entry: its reference, or for a chart or OCI
// source Chart.String(), or for an attachment Attachment.String().
func (im Image) Name() string {
	if im.Chart != nil {
		return im.Chart.String()
	}
	if im.Attached != nil {
		return im.Attached.String() + " (" + im.Ref.String() + ")"
	}
	return im.Ref.String()
}

// Bundle is a parsed, validated bundle index.
type Bundle struct {
	Revision string    // full 40-hex commit SHA
	Source   string    // git URL, may be empty
	Created  time.Time // when the bundle was built
	Images   []Image   // in index order
	// GitDeps are the other git commits the revision needs (submodules,
	// remote Kustomize bases), AnnotationGitDeps; sorted by Build.
	GitDeps []GitDep
}

// Kinds counts entries by kind, as logs and reports name them: container
// images, charts (Helm charts and OCI sources), and attachments
// (signatures, attestations, SBOMs).
type Kinds struct{ Images, Charts, Attached int }

// CountKinds counts entries by kind.
func CountKinds(entries []Image) Kinds {
	var k Kinds
	for _, im := range entries {
		switch {
		case im.Chart != nil:
			k.Charts++
		case im.Attached != nil:
			k.Attached++
		default:
			k.Images++
		}
	}
	return k
}

// Build returns the canonical JSON of the bundle index for b and its
// descriptor. Images are sorted by reference so the same inputs give the
// same digest; an image's digest must be set. Images' Blobs become
// AnnotationBlobs hints unless together they exceed the hints' bounds (then
// no entry gets one).
func Build(b Bundle) ([]byte, v1.Descriptor, error) {
	if !shaRE.MatchString(b.Revision) {
		return nil, v1.Descriptor{}, fmt.Errorf("bundle revision %q: want a full 40-hex lowercase commit SHA", b.Revision)
	}
	imgs := append([]Image(nil), b.Images...)
	sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].Ref.String() < imgs[j].Ref.String() })
	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		ArtifactType:  ArtifactType,
		Manifests:     []v1.Descriptor{},
		Annotations: map[string]string{
			AnnotationRevision: b.Revision,
			AnnotationCreated:  b.Created.UTC().Format(time.RFC3339),
		},
	}
	if b.Source != "" {
		idx.Annotations[AnnotationSource] = b.Source
	}
	deps, err := encodeGitDeps(b.GitDeps)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if deps != "" {
		idx.Annotations[AnnotationGitDeps] = deps
	}
	hints := encodeHints(imgs)
	seen := map[string]bool{}
	for i, im := range imgs {
		d := im.Descriptor
		if err := checkImageDescriptor(d); err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", im.Ref, err)
		}
		if im.Ref.Digest != "" && im.Ref.Digest != d.Digest.String() {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: reference digest differs from descriptor digest %s", im.Ref, d.Digest)
		}
		ref := im.Ref.String()
		if seen[ref] {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s listed twice", ref)
		}
		seen[ref] = true
		d.Annotations = map[string]string{}
		if im.Chart != nil && im.Attached != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: both a chart and an attachment", im.Ref)
		}
		if im.Attached != nil {
			if err := im.Attached.check(); err != nil {
				return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", im.Ref, err)
			}
			d.Annotations = im.Attached.annotations()
		}
		if im.Chart != nil {
			if err := im.Chart.check(); err != nil {
				return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", im.Ref, err)
			}
			d.Annotations = im.Chart.annotations()
		}
		d.Annotations[AnnotationImageRef] = ref
		if hints != nil && hints[i] != "" {
			d.Annotations[AnnotationBlobs] = hints[i]
		}
		d.Platform = nil
		d.Data = nil
		idx.Manifests = append(idx.Manifests, d)
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("encode bundle index: %w", err)
	}
	h, n, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	return raw, v1.Descriptor{MediaType: types.OCIImageIndex, Size: n, Digest: h, ArtifactType: ArtifactType}, nil
}

// Parse validates raw as a bundle index read from outside (a registry, a
// file) and returns it. Every error says what is wrong; bad input never
// panics.
func Parse(raw []byte) (*Bundle, error) {
	if len(raw) > oci.MaxManifestSize {
		return nil, fmt.Errorf("bundle index: %d bytes exceeds the %d byte limit", len(raw), oci.MaxManifestSize)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("bundle index: not a JSON image index: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("bundle index: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if idx.MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("bundle index: mediaType %q, want %q", idx.MediaType, types.OCIImageIndex)
	}
	if idx.ArtifactType != ArtifactType {
		return nil, fmt.Errorf("bundle index: artifactType %q, want %q (not a ballast bundle)", idx.ArtifactType, ArtifactType)
	}
	b := &Bundle{Revision: idx.Annotations[AnnotationRevision], Source: idx.Annotations[AnnotationSource]}
	if !shaRE.MatchString(b.Revision) {
		return nil, fmt.Errorf("bundle index: annotation %s %q is not a full 40-hex lowercase commit SHA", AnnotationRevision, b.Revision)
	}
	created, ok := idx.Annotations[AnnotationCreated]
	if !ok {
		return nil, fmt.Errorf("bundle index: annotation %s missing", AnnotationCreated)
	}
	t, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return nil, fmt.Errorf("bundle index: annotation %s: %w", AnnotationCreated, err)
	}
	b.Created = t
	if b.GitDeps, err = parseGitDeps(idx.Annotations[AnnotationGitDeps]); err != nil {
		return nil, fmt.Errorf("bundle index: %w", err)
	}
	seen := map[string]bool{}
	for i, d := range idx.Manifests {
		if err := checkImageDescriptor(d); err != nil {
			return nil, fmt.Errorf("bundle index: manifests[%d]: %w", i, err)
		}
		s, ok := d.Annotations[AnnotationImageRef]
		if !ok {
			return nil, fmt.Errorf("bundle index: manifests[%d]: annotation %s missing", i, AnnotationImageRef)
		}
		ref, err := imageref.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("bundle index: manifests[%d]: %w", i, err)
		}
		if ref.String() != s {
			return nil, fmt.Errorf("bundle index: manifests[%d]: image reference %q is not fully qualified (want %q)", i, s, ref.String())
		}
		if ref.Digest != "" && ref.Digest != d.Digest.String() {
			return nil, fmt.Errorf("bundle index: manifests[%d]: reference %s does not match descriptor digest %s", i, s, d.Digest)
		}
		if seen[s] {
			return nil, fmt.Errorf("bundle index: manifests[%d]: image %s listed twice", i, s)
		}
		seen[s] = true
		chart, err := parseChart(d.Annotations)
		if err != nil {
			return nil, fmt.Errorf("bundle index: manifests[%d]: %w", i, err)
		}
		att, err := parseAttachment(d.Annotations)
		if err != nil {
			return nil, fmt.Errorf("bundle index: manifests[%d]: %w", i, err)
		}
		if att != nil && chart != nil {
			return nil, fmt.Errorf("bundle index: manifests[%d]: both a chart and an attachment", i)
		}
		b.Images = append(b.Images, Image{Ref: ref, Descriptor: d, Chart: chart, Attached: att})
	}
	return b, nil
}

// checkImageDescriptor validates the descriptor of an image manifest or
// index as found in outside input.
func checkImageDescriptor(d v1.Descriptor) error {
	if !oci.IsIndex(d.MediaType) && !oci.IsManifest(d.MediaType) {
		return fmt.Errorf("mediaType %q is not an image manifest or index", d.MediaType)
	}
	if err := oci.CheckDigest(d.Digest); err != nil {
		return err
	}
	if d.Size <= 0 || d.Size > oci.MaxManifestSize {
		return fmt.Errorf("size %d out of range (1..%d)", d.Size, oci.MaxManifestSize)
	}
	return nil
}
