package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci"
)

// AnnotationBlobs, on an entry of the bundle index's manifests[], lists the
// blobs that entry reaches (layers, configs, for every platform the bundle
// keeps), so that sync can start fetching them as soon as the index has
// arrived, while the entry's manifests are still on their way: on a
// 600 ms link that saves a round trip. The value is a JSON array of
// BlobHint, sorted by digest:
//
//	[{"digest":"sha256:…","size":2621440,"platforms":["linux/amd64"]}, …]
//
// It is a hint, never the source of truth: what an entry needs is what its
// manifests reach, walked and verified as before; a hinted blob is fetched
// by digest and verified like any other, and one no manifest reaches is
// not kept. The version is in the key: a later format takes another key,
// and edges that do not know a key ignore it (as edges made before this
// one ignore this key). Absent when the bundle was made without hints or
// they would exceed the bounds below.
const AnnotationBlobs = "io.ballast.blobs.v1"

// Bounds of the blob hints of one bundle index, over all entries. Beyond
// them Build writes no hints and BlobHints refuses them (sync then walks
// the manifests first, as without hints).
const (
	// MaxHintBlobs bounds the hinted blobs (entries summed).
	MaxHintBlobs = 10000
	// MaxHintBytes bounds the hinted blobs' sizes summed: 1 TiB.
	MaxHintBytes = 1 << 40
	// maxHintAnnotation bounds the annotations' lengths summed, so hints
	// never push an index towards registries' manifest size limits.
	maxHintAnnotation = 1 << 20
	// maxHintPlatforms bounds the platforms of one hinted blob.
	maxHintPlatforms = 64
)

// BlobHint is one blob an entry of a bundle reaches.
type BlobHint struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"` // bytes, > 0
	// Platforms are the platforms (oci.ParsePlatform form, "linux/arm64")
	// of the index children under which the blob sits; empty when it sits
	// under a manifest that is not a child of an index (a plain image, a
	// chart), which every platform selection keeps.
	Platforms []string `json:"platforms,omitempty"`
}

// Selected reports whether a platform selection keeps the blob.
func (h BlobHint) Selected(sel oci.Platforms) bool {
	if len(h.Platforms) == 0 || len(sel) == 0 {
		return true
	}
	for _, s := range h.Platforms {
		p, err := oci.ParsePlatform(s)
		if err == nil && sel.Match(&p) {
			return true
		}
	}
	return false
}

// Descriptor is the blob's descriptor as the engine fetches it by digest.
func (h BlobHint) Descriptor() v1.Descriptor {
	return v1.Descriptor{Digest: h.Digest, Size: h.Size}
}

func (h BlobHint) check() error {
	if err := oci.CheckDigest(h.Digest); err != nil {
		return err
	}
	if h.Size <= 0 || h.Size > MaxHintBytes {
		return fmt.Errorf("blob %s: size %d out of range (1..%d)", h.Digest, h.Size, int64(MaxHintBytes))
	}
	if len(h.Platforms) > maxHintPlatforms {
		return fmt.Errorf("blob %s: %d platforms, at most %d", h.Digest, len(h.Platforms), maxHintPlatforms)
	}
	for _, p := range h.Platforms {
		if _, err := oci.ParsePlatform(p); err != nil {
			return fmt.Errorf("blob %s: platform %q: %w", h.Digest, p, err)
		}
	}
	return nil
}

// HintsFromWalk returns the blob hints of an entry from what oci.Walk
// visited for it (every node; the order does not matter): each blob once,
// with the platforms of the index children it sits under.
func HintsFromWalk(nodes []oci.Node) []BlobHint {
	plat := map[v1.Hash]string{} // manifest digest -> platform of the index child
	for _, n := range nodes {
		if n.Raw != nil && n.Parent != nil && n.Descriptor.Platform != nil {
			plat[n.Descriptor.Digest] = platformString(n.Descriptor.Platform)
		}
	}
	type acc struct {
		h   BlobHint
		any bool // under a manifest without a platform: every selection needs it
		ps  map[string]bool
	}
	blobs := map[v1.Hash]*acc{}
	for _, n := range nodes {
		if n.Raw != nil {
			continue
		}
		a := blobs[n.Descriptor.Digest]
		if a == nil {
			a = &acc{h: BlobHint{Digest: n.Descriptor.Digest, Size: n.Descriptor.Size}, ps: map[string]bool{}}
			blobs[n.Descriptor.Digest] = a
		}
		p := ""
		if n.Parent != nil {
			p = plat[n.Parent.Digest]
		}
		if p == "" {
			a.any = true
		} else {
			a.ps[p] = true
		}
	}
	out := make([]BlobHint, 0, len(blobs))
	for _, a := range blobs {
		if !a.any {
			for p := range a.ps {
				a.h.Platforms = append(a.h.Platforms, p)
			}
			sort.Strings(a.h.Platforms)
		}
		out = append(out, a.h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest.String() < out[j].Digest.String() })
	return out
}

// platformString writes p as oci.ParsePlatform reads it.
func platformString(p *v1.Platform) string {
	return oci.Platforms{*p}.String()
}

// encodeHints returns the AnnotationBlobs value of each image (in order;
// "" for none), or nil when the hints exceed the bounds or do not check.
func encodeHints(imgs []Image) []string {
	out := make([]string, len(imgs))
	var blobs, length int
	var bytes int64
	for i, im := range imgs {
		if len(im.Blobs) == 0 {
			continue
		}
		for _, h := range im.Blobs {
			if h.check() != nil {
				return nil
			}
			bytes += h.Size
		}
		blobs += len(im.Blobs)
		raw, err := json.Marshal(im.Blobs)
		if err != nil {
			return nil
		}
		length += len(raw)
		out[i] = string(raw)
	}
	if blobs > MaxHintBlobs || bytes > MaxHintBytes || length > maxHintAnnotation {
		return nil
	}
	return out
}

// ParseBlobHints parses one AnnotationBlobs value read from outside (a
// bundle index). Every error says what is wrong; bad input never panics.
func ParseBlobHints(s string) ([]BlobHint, error) {
	if len(s) > maxHintAnnotation {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", AnnotationBlobs, len(s), maxHintAnnotation)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var hs []BlobHint
	if err := dec.Decode(&hs); err != nil {
		return nil, fmt.Errorf("%s: not a JSON array of blob hints: %w", AnnotationBlobs, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the array", AnnotationBlobs)
	}
	if hs == nil {
		return nil, fmt.Errorf("%s: null, want an array", AnnotationBlobs)
	}
	if len(hs) > MaxHintBlobs {
		return nil, fmt.Errorf("%s: %d blobs, at most %d", AnnotationBlobs, len(hs), MaxHintBlobs)
	}
	seen := make(map[v1.Hash]bool, len(hs))
	var total int64
	for i, h := range hs {
		if err := h.check(); err != nil {
			return nil, fmt.Errorf("%s: [%d]: %w", AnnotationBlobs, i, err)
		}
		if seen[h.Digest] {
			return nil, fmt.Errorf("%s: [%d]: blob %s listed twice", AnnotationBlobs, i, h.Digest)
		}
		seen[h.Digest] = true
		if total += h.Size; total > MaxHintBytes {
			return nil, fmt.Errorf("%s: blobs sum to more than %d bytes", AnnotationBlobs, int64(MaxHintBytes))
		}
	}
	return hs, nil
}

// ErrNoHints is returned by BlobHints for a bundle without blob hints.
var ErrNoHints = errors.New("bundle index has no blob hints")

// BlobHints returns, for each entry of b (in b.Images order), the blobs
// its AnnotationBlobs hints (nil for an entry without one), checked
// against the bounds over the whole index. An error (ErrNoHints when no
// entry has hints) means: use none of them, walk the manifests first.
func BlobHints(b *Bundle) ([][]BlobHint, error) {
	out := make([][]BlobHint, len(b.Images))
	var blobs, length int
	var bytes int64
	for i, im := range b.Images {
		s, ok := im.Descriptor.Annotations[AnnotationBlobs]
		if !ok {
			continue
		}
		if length += len(s); length > maxHintAnnotation {
			return nil, fmt.Errorf("%s: annotations sum to more than %d bytes", AnnotationBlobs, maxHintAnnotation)
		}
		hs, err := ParseBlobHints(s)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", im.Name(), err)
		}
		for _, h := range hs {
			bytes += h.Size
		}
		if blobs += len(hs); blobs > MaxHintBlobs {
			return nil, fmt.Errorf("%s: more than %d blobs in the index", AnnotationBlobs, MaxHintBlobs)
		}
		if bytes > MaxHintBytes {
			return nil, fmt.Errorf("%s: blobs of the index sum to more than %d bytes", AnnotationBlobs, int64(MaxHintBytes))
		}
		out[i] = hs
	}
	if length == 0 {
		return nil, ErrNoHints
	}
	return out, nil
}
