package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// Found is what one app needs: its images and the Helm charts and Argo CD
// OCI sources it was rendered from.
type Found struct {
	Images []imageref.Ref
	Charts []Chart
	// RemoteBases are the remote git bases of the kustomizations rendered
	// (render.RemoteBases), before their refs are resolved.
	RemoteBases []gitdeps.RemoteBase
}

// Chart is a Helm chart or an Argo CD OCI source an app needs, resolved to
// an exact version: one entry of the bundle (docs/charts.md). It is either
// copied from an OCI registry as it is, by digest (Repository set), or
// carried from memory (Content set: a chart from an HTTP Helm repository
// converted to Helm's OCI form).
type Chart struct {
	// Info is what the entry's io.ballast.chart.* annotations record.
	Info bundle.Chart
	// Ref is where the entry is stored (io.ballast.image.ref): the OCI
	// reference, or bundle.HelmRepoChartRef for an HTTP repository chart.
	Ref imageref.Ref
	// ArtifactType is the manifest's config media type when known.
	ArtifactType string

	// Repository ("host[:port]/path") and Reference (a "sha256:…" digest,
	// or a tag when the digest is not known) name the manifest to copy.
	Repository string
	Reference  string
	// LayerDigest, when set, must be the digest of one of the manifest's
	// layers: the chart archive that was rendered.
	LayerDigest string

	// Content is the manifest and its blobs, held in memory.
	Content *Content
}

// Content is one OCI manifest and the blobs it references, in memory.
type Content struct {
	Manifest []byte
	Blobs    [][]byte
}

// ChartResult is one chart or OCI source of the bundle.
type ChartResult struct {
	Ref     string `json:"ref"`
	Repo    string `json:"repo"`
	Chart   string `json:"chart,omitempty"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
	Bytes   int64  `json:"bytes"` // manifest + blob bytes of the entry
}

// resolveChart turns c into a bundle entry and the source to copy it
// from. Errors are about the input unless the registry could not be
// reached.
func resolveChart(ctx context.Context, eng *transfer.Engine, c Chart, newSource func(repo string) (transfer.Source, error)) (bundle.Image, transfer.Source, int64, error) {
	info := c.Info
	what := info.String()
	var (
		src transfer.Source
		d   v1.Descriptor
		raw []byte
	)
	switch {
	case c.Content != nil:
		ms, err := newMemorySource(c.Content)
		if err != nil {
			return bundle.Image{}, nil, 0, inputErr(fmt.Errorf("%s: %w", what, err))
		}
		src, d, raw = ms, ms.desc, c.Content.Manifest
	case c.Repository != "":
		s, err := newSource(c.Repository)
		if err != nil {
			return bundle.Image{}, nil, 0, inputErr(fmt.Errorf("%s: %w", what, err))
		}
		if d, err = eng.Resolve(ctx, s, c.Reference); err != nil {
			return bundle.Image{}, nil, 0, fmt.Errorf("%s: %s@%s: %w", what, c.Repository, c.Reference, err)
		}
		if raw, err = eng.FetchManifest(ctx, s, d); err != nil {
			return bundle.Image{}, nil, 0, fmt.Errorf("%s: %s@%s: %w", what, c.Repository, d.Digest, err)
		}
		src = s
	default:
		return bundle.Image{}, nil, 0, fmt.Errorf("%s: neither a repository nor content to carry", what)
	}
	if !oci.IsManifest(d.MediaType) {
		return bundle.Image{}, nil, 0, inputErr(fmt.Errorf("%s: media type %q, want an image manifest", what, d.MediaType))
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return bundle.Image{}, nil, 0, inputErr(fmt.Errorf("%s: manifest: %w", what, err))
	}
	if c.LayerDigest != "" {
		ok := false
		for _, l := range m.Layers {
			ok = ok || l.Digest.String() == c.LayerDigest
		}
		if !ok {
			return bundle.Image{}, nil, 0, inputErr(fmt.Errorf("%s: manifest %s no longer holds the chart archive %s that was rendered", what, d.Digest, c.LayerDigest))
		}
	}
	size := d.Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	d.ArtifactType = c.ArtifactType
	if d.ArtifactType == "" {
		d.ArtifactType = string(m.Config.MediaType)
	}
	ref := c.Ref
	if ref.Digest != "" && ref.Digest != d.Digest.String() {
		return bundle.Image{}, nil, 0, inputErr(fmt.Errorf("%s: %s resolved to %s", what, ref, d.Digest))
	}
	return bundle.Image{Ref: ref, Descriptor: d, Chart: &info}, src, size, nil
}

// memorySource serves one manifest and its blobs from memory, each checked
// against its digest when it is built.
type memorySource struct {
	desc  v1.Descriptor
	raw   []byte
	blobs map[v1.Hash][]byte
}

func newMemorySource(c *Content) (*memorySource, error) {
	h, n, err := v1.SHA256(bytes.NewReader(c.Manifest))
	if err != nil {
		return nil, err
	}
	var head struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(c.Manifest, &head); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	s := &memorySource{desc: v1.Descriptor{MediaType: head.MediaType, Size: n, Digest: h}, raw: c.Manifest, blobs: map[v1.Hash][]byte{}}
	for _, b := range c.Blobs {
		bh, _, err := v1.SHA256(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		s.blobs[bh] = b
	}
	return s, nil
}

func (s *memorySource) Resolve(context.Context, string) (v1.Descriptor, error) { return s.desc, nil }

func (s *memorySource) FetchManifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Digest != s.desc.Digest {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, transfer.ErrNotFound)
	}
	return s.raw, nil
}

func (s *memorySource) OpenBlob(_ context.Context, d v1.Descriptor, offset int64) (io.ReadCloser, error) {
	b, ok := s.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, transfer.ErrNotFound)
	}
	if offset < 0 || offset > int64(len(b)) {
		return nil, fmt.Errorf("blob %s: offset %d out of range", d.Digest, offset)
	}
	return io.NopCloser(bytes.NewReader(b[offset:])), nil
}

// errChartConflict marks two charts stored under one reference with
// different content.
var errChartConflict = errors.New("two different charts would be stored under one reference")
