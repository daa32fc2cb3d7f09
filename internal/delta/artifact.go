package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/oci"
)

// Format constants of delta artifacts.
const (
	// ArtifactType marks an OCI image manifest as one delta whose patch
	// is of format 1: its one layer is the patch, its annotations say
	// what it makes from what.
	ArtifactType = "application/vnd.ballast.delta.v1"
	// ArtifactTypeV2 marks a delta whose patch is of format 2 (it expands
	// the zlib-compressed sections of ELF files). An edge that knows only
	// format 1 refuses the delta index listing it (the revision comes
	// whole) and never fetches the patch.
	ArtifactTypeV2 = "application/vnd.ballast.delta.v2"
	// artifactTypePrefix starts the artifact type of every delta format,
	// those of later formats too: ParseIndex skips these.
	artifactTypePrefix = "application/vnd.ballast.delta.v"
	// IndexArtifactType marks the OCI image index that lists a revision's
	// deltas, tagged IndexTag(revision) in the bundles repository.
	IndexArtifactType = "application/vnd.ballast.deltas.v1+json"
	// MediaTypePatch is the patch blob: a zstd frame made with the base
	// layer's uncompressed content as raw dictionary.
	MediaTypePatch = "application/vnd.ballast.delta.v1.patch+zstd"
	// MediaTypePatchV2 is a format 2 patch: an expansion section, then
	// as format 1 on the expanded contents.
	MediaTypePatchV2 = "application/vnd.ballast.delta.v2.patch+zstd"
	// MediaTypeEmpty is the OCI empty descriptor's media type (config).
	MediaTypeEmpty = "application/vnd.oci.empty.v1+json"
)

// Annotations of a delta manifest (and of its descriptor in the index).
const (
	AnnotationTarget          = "io.ballast.delta.target"           // digest of the layer made
	AnnotationTargetSize      = "io.ballast.delta.target.size"      // its size, bytes
	AnnotationTargetMediaType = "io.ballast.delta.target.mediatype" // its media type
	AnnotationTargetDiffID    = "io.ballast.delta.target.diffid"    // digest of its uncompressed content
	AnnotationTargetContent   = "io.ballast.delta.target.content"   // size of its uncompressed content, bytes
	AnnotationBase            = "io.ballast.delta.base"             // digest of the base layer
	AnnotationBaseSize        = "io.ballast.delta.base.size"
	AnnotationBaseMediaType   = "io.ballast.delta.base.mediatype"
	AnnotationBaseDiffID      = "io.ballast.delta.base.diffid"
	AnnotationBaseContent     = "io.ballast.delta.base.content"
	AnnotationPatchSize       = "io.ballast.delta.patch.size" // size of the patch blob, bytes
	// AnnotationBaseImage is the fully qualified name (no tag or digest)
	// of an image of an earlier bundle that holds the base: where the edge
	// looks for it.
	AnnotationBaseImage = "io.ballast.delta.base.image"
	AnnotationRecipe    = "io.ballast.delta.recipe" // Recipe.String()
	// AnnotationBaseRecipe, when present, is the recipe that reproduces
	// the base blob at bundle time: the edge checks that its own
	// compressor still does before the patch crosses the link.
	AnnotationBaseRecipe = "io.ballast.delta.base.recipe"
	// AnnotationBaseZlib, on a format 2 delta, names one zlib stream of
	// the base's content that compress/zlib made again at bundle time:
	// "offset,length,expanded length,level" (decimal; offset in the
	// base's uncompressed content). The edge checks that its own
	// compress/zlib still makes it before the patch crosses the link.
	AnnotationBaseZlib = "io.ballast.delta.base.zlib"
	// AnnotationRevision on the index is the revision whose bundle the
	// deltas serve.
	AnnotationRevision = "org.opencontainers.image.revision"
)

// emptyJSON is the OCI empty descriptor's content, "{}".
var emptyJSON = []byte("{}")

// EmptyDescriptor is the OCI empty descriptor (image-spec 1.1), the config
// of every delta manifest.
func EmptyDescriptor() v1.Descriptor {
	h, n, _ := v1.SHA256(bytes.NewReader(emptyJSON))
	return v1.Descriptor{MediaType: MediaTypeEmpty, Digest: h, Size: n, Data: emptyJSON}
}

// IndexTag is the tag of revision's delta index in the bundles repository:
// next to the bundle index (tag revision).
func IndexTag(revision string) string { return revision + ".deltas" }

// Layer is one side of a delta: a layer blob and its uncompressed content.
type Layer struct {
	Digest    v1.Hash
	Size      int64
	MediaType types.MediaType
	// DiffID is the digest of the uncompressed content; Content its size.
	DiffID  v1.Hash
	Content int64
}

// Descriptor is the layer's blob descriptor.
func (l Layer) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
}

// Delta describes one patch: applied to Base's content it makes Target's
// content, which Recipe compresses into Target's blob.
type Delta struct {
	Target    Layer
	Base      Layer
	BaseImage string
	Recipe    Recipe
	// BaseRecipe reproduces the base blob; nil when none does.
	BaseRecipe *Recipe
	// BaseZlib is a zlib stream of the base's content that compress/zlib
	// reproduces (format 2); nil when none was found.
	BaseZlib *ZlibProbe
	Patch    v1.Descriptor // the patch blob
	// Version is the patch's format: 1 (or 0) or 2 (Create). It sets the
	// manifest's artifact type and the patch's media type.
	Version int
}

func (d *Delta) version() int { return max(d.Version, 1) }

// ArtifactType is the artifact type of d's manifest.
func (d *Delta) artifactType() string {
	if d.version() == 2 {
		return ArtifactTypeV2
	}
	return ArtifactType
}

func (d *Delta) patchMediaType() types.MediaType {
	if d.version() == 2 {
		return MediaTypePatchV2
	}
	return MediaTypePatch
}

// versionOf is the patch format of a delta artifact type, 0 for one this
// package does not know.
func versionOf(artifactType string) int {
	switch artifactType {
	case ArtifactType:
		return 1
	case ArtifactTypeV2:
		return 2
	}
	return 0
}

func (d *Delta) annotations() map[string]string {
	a := d.baseAnnotations()
	if d.BaseRecipe != nil {
		a[AnnotationBaseRecipe] = d.BaseRecipe.String()
	}
	if d.BaseZlib != nil {
		a[AnnotationBaseZlib] = d.BaseZlib.String()
	}
	return a
}

func (d *Delta) baseAnnotations() map[string]string {
	return map[string]string{
		AnnotationTarget:          d.Target.Digest.String(),
		AnnotationTargetSize:      strconv.FormatInt(d.Target.Size, 10),
		AnnotationTargetMediaType: string(d.Target.MediaType),
		AnnotationTargetDiffID:    d.Target.DiffID.String(),
		AnnotationTargetContent:   strconv.FormatInt(d.Target.Content, 10),
		AnnotationBase:            d.Base.Digest.String(),
		AnnotationBaseSize:        strconv.FormatInt(d.Base.Size, 10),
		AnnotationBaseMediaType:   string(d.Base.MediaType),
		AnnotationBaseDiffID:      d.Base.DiffID.String(),
		AnnotationBaseContent:     strconv.FormatInt(d.Base.Content, 10),
		AnnotationPatchSize:       strconv.FormatInt(d.Patch.Size, 10),
		AnnotationBaseImage:       d.BaseImage,
		AnnotationRecipe:          d.Recipe.String(),
	}
}

// BuildManifest returns the delta manifest of d and its descriptor (which
// carries the same annotations, for the index). Its config is the empty
// descriptor, whose blob ("{}") must be pushed with the patch.
func BuildManifest(d *Delta) ([]byte, v1.Descriptor, error) {
	if err := d.check(); err != nil {
		return nil, v1.Descriptor{}, err
	}
	cfg := EmptyDescriptor()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        cfg,
		Layers:        []v1.Descriptor{{MediaType: d.patchMediaType(), Digest: d.Patch.Digest, Size: d.Patch.Size}},
		Annotations:   d.annotations(),
	}
	raw, err := json.Marshal(struct {
		v1.Manifest
		ArtifactType string `json:"artifactType"`
	}{m, d.artifactType()})
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(raw))
	return raw, v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n, ArtifactType: d.artifactType(), Annotations: d.annotations()}, nil
}

func (d *Delta) check() error {
	for _, c := range []struct {
		what string
		l    Layer
	}{{"target", d.Target}, {"base", d.Base}} {
		if err := oci.CheckDigest(c.l.Digest); err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
		if err := oci.CheckDigest(c.l.DiffID); err != nil {
			return fmt.Errorf("%s diffid: %w", c.what, err)
		}
		if c.l.Size <= 0 || c.l.Content < 0 || c.l.Content > MaxContent {
			return fmt.Errorf("%s: size %d, content %d: out of range (content at most %d)", c.what, c.l.Size, c.l.Content, MaxContent)
		}
		if FormatOf(c.l.MediaType) == "" {
			return fmt.Errorf("%s: media type %q is not a layer this package handles", c.what, c.l.MediaType)
		}
	}
	if d.Version < 0 || d.Version > 2 {
		return fmt.Errorf("patch format %d: want 1 or 2", d.Version)
	}
	if d.Target.Digest == d.Base.Digest {
		return errors.New("target and base are the same layer")
	}
	if FormatOf(d.Target.MediaType) != d.Recipe.Format {
		return fmt.Errorf("recipe format %q does not fit target media type %q", d.Recipe.Format, d.Target.MediaType)
	}
	if err := d.Recipe.check(); err != nil {
		return fmt.Errorf("recipe: %w", err)
	}
	if d.BaseImage == "" || len(d.BaseImage) > 512 {
		return errors.New("base image name missing or longer than 512 bytes")
	}
	if err := oci.CheckDigest(d.Patch.Digest); err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	if d.Patch.Size <= 0 {
		return fmt.Errorf("patch: size %d out of range", d.Patch.Size)
	}
	return nil
}

// manifestJSON is what ParseManifest reads.
type manifestJSON struct {
	v1.Manifest
	ArtifactType string `json:"artifactType"`
}

// ParseManifest validates raw as a delta manifest read from outside (a
// registry) and returns the delta it describes. Every error says what is
// wrong; bad input never panics.
func ParseManifest(raw []byte) (*Delta, error) {
	if len(raw) > oci.MaxManifestSize {
		return nil, fmt.Errorf("delta manifest: %d bytes exceeds the %d byte limit", len(raw), oci.MaxManifestSize)
	}
	var m manifestJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("delta manifest: not a JSON image manifest: %w", err)
	}
	if m.SchemaVersion != 2 || m.MediaType != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("delta manifest: schemaVersion %d, mediaType %q: want 2, %q", m.SchemaVersion, m.MediaType, types.OCIManifestSchema1)
	}
	version := versionOf(m.ArtifactType)
	if version == 0 {
		return nil, fmt.Errorf("delta manifest: artifactType %q, want %q or %q", m.ArtifactType, ArtifactType, ArtifactTypeV2)
	}
	d, err := FromAnnotations(m.Annotations)
	if err != nil {
		return nil, fmt.Errorf("delta manifest: %w", err)
	}
	d.Version = version
	if len(m.Layers) != 1 || m.Layers[0].MediaType != d.patchMediaType() {
		return nil, fmt.Errorf("delta manifest: want exactly one layer of media type %q", d.patchMediaType())
	}
	if m.Layers[0].Size != d.Patch.Size {
		return nil, fmt.Errorf("delta manifest: patch layer size %d, annotation says %d", m.Layers[0].Size, d.Patch.Size)
	}
	d.Patch = v1.Descriptor{MediaType: d.patchMediaType(), Digest: m.Layers[0].Digest, Size: m.Layers[0].Size}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("delta manifest: %w", err)
	}
	return d, nil
}

// FromAnnotations reads a delta's target, base, recipe and patch size from
// annotations (a delta manifest's, or its descriptor's in the index); the
// patch's digest stays unset. Values are checked by ParseManifest.
func FromAnnotations(a map[string]string) (*Delta, error) {
	var d Delta
	var err error
	layer := func(l *Layer, digest, size, mt, diffid, content string) {
		if err != nil {
			return
		}
		for _, k := range []string{digest, size, mt, diffid, content} {
			if _, ok := a[k]; !ok {
				err = fmt.Errorf("annotation %s missing", k)
				return
			}
		}
		if l.Digest, err = v1.NewHash(a[digest]); err != nil {
			err = fmt.Errorf("annotation %s: %w", digest, err)
			return
		}
		if l.Size, err = strconv.ParseInt(a[size], 10, 64); err != nil {
			err = fmt.Errorf("annotation %s: %w", size, err)
			return
		}
		l.MediaType = types.MediaType(a[mt])
		if l.DiffID, err = v1.NewHash(a[diffid]); err != nil {
			err = fmt.Errorf("annotation %s: %w", diffid, err)
			return
		}
		if l.Content, err = strconv.ParseInt(a[content], 10, 64); err != nil {
			err = fmt.Errorf("annotation %s: %w", content, err)
		}
	}
	layer(&d.Target, AnnotationTarget, AnnotationTargetSize, AnnotationTargetMediaType, AnnotationTargetDiffID, AnnotationTargetContent)
	layer(&d.Base, AnnotationBase, AnnotationBaseSize, AnnotationBaseMediaType, AnnotationBaseDiffID, AnnotationBaseContent)
	if err != nil {
		return nil, err
	}
	if d.Patch.Size, err = strconv.ParseInt(a[AnnotationPatchSize], 10, 64); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnotationPatchSize, err)
	}
	d.BaseImage = a[AnnotationBaseImage]
	if d.Recipe, err = ParseRecipe(a[AnnotationRecipe]); err != nil {
		return nil, err
	}
	if v, ok := a[AnnotationBaseRecipe]; ok {
		r, err := ParseRecipe(v)
		if err != nil {
			return nil, fmt.Errorf("base %w", err)
		}
		if r.Format != FormatOf(d.Base.MediaType) {
			return nil, fmt.Errorf("base recipe format %q does not fit base media type %q", r.Format, d.Base.MediaType)
		}
		d.BaseRecipe = &r
	}
	if v, ok := a[AnnotationBaseZlib]; ok {
		p, err := parseZlibProbe(v, d.Base.Content)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationBaseZlib, err)
		}
		d.BaseZlib = &p
	}
	return &d, nil
}

// BuildIndex returns the delta index of revision listing the delta
// manifests ds (descriptors from BuildManifest) and its descriptor.
func BuildIndex(revision string, ds []v1.Descriptor) ([]byte, v1.Descriptor, error) {
	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		ArtifactType:  IndexArtifactType,
		Manifests:     append([]v1.Descriptor{}, ds...),
		Annotations:   map[string]string{AnnotationRevision: revision},
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	h, n, _ := v1.SHA256(bytes.NewReader(raw))
	return raw, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: n, ArtifactType: IndexArtifactType}, nil
}

// MaxIndexEntries bounds the deltas one index may list.
const MaxIndexEntries = 10000

// Entry is one delta as the index lists it: the manifest's descriptor and
// what its annotations say (the patch's digest unset: the manifest has it).
type Entry struct {
	Manifest v1.Descriptor
	Delta    *Delta
}

// ParseIndex validates raw as a delta index of revision read from outside
// and returns its entries; entries of a delta format this package does
// not know (artifact type application/vnd.ballast.delta.v<N>) are left
// out, so their layers come whole. Every error says what is wrong; bad input never
// panics.
func ParseIndex(raw []byte, revision string) ([]Entry, error) {
	if len(raw) > oci.MaxManifestSize {
		return nil, fmt.Errorf("delta index: %d bytes exceeds the %d byte limit", len(raw), oci.MaxManifestSize)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("delta index: not a JSON image index: %w", err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("delta index: schemaVersion %d, mediaType %q: want 2, %q", idx.SchemaVersion, idx.MediaType, types.OCIImageIndex)
	}
	if idx.ArtifactType != IndexArtifactType {
		return nil, fmt.Errorf("delta index: artifactType %q, want %q", idx.ArtifactType, IndexArtifactType)
	}
	if got := idx.Annotations[AnnotationRevision]; got != revision {
		return nil, fmt.Errorf("delta index: for revision %q, want %q", got, revision)
	}
	if len(idx.Manifests) > MaxIndexEntries {
		return nil, fmt.Errorf("delta index: %d entries, more than %d", len(idx.Manifests), MaxIndexEntries)
	}
	out := make([]Entry, 0, len(idx.Manifests))
	for i, m := range idx.Manifests {
		if m.MediaType != types.OCIManifestSchema1 || !strings.HasPrefix(m.ArtifactType, artifactTypePrefix) {
			return nil, fmt.Errorf("delta index: manifests[%d]: media type %q, artifactType %q: not a delta manifest", i, m.MediaType, m.ArtifactType)
		}
		version := versionOf(m.ArtifactType)
		if version == 0 {
			continue // a later format: its layer comes whole
		}
		if err := oci.CheckDigest(m.Digest); err != nil {
			return nil, fmt.Errorf("delta index: manifests[%d]: %w", i, err)
		}
		if m.Size <= 0 || m.Size > oci.MaxManifestSize {
			return nil, fmt.Errorf("delta index: manifests[%d]: size %d out of range", i, m.Size)
		}
		d, err := FromAnnotations(m.Annotations)
		if err == nil {
			d.Version = version
			d.Patch.Digest = m.Digest // a stand-in, so check covers the rest
			err = d.check()
			d.Patch.Digest = v1.Hash{}
		}
		if err != nil {
			return nil, fmt.Errorf("delta index: manifests[%d]: %w", i, err)
		}
		out = append(out, Entry{Manifest: v1.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType}, Delta: d})
	}
	return out, nil
}
