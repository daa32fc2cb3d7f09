package exportfile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/ocitar"
)

// annotationRefName names a tag in an OCI layout's index.json.
const annotationRefName = "org.opencontainers.image.ref.name"

// Verified is an opened, fully verified export file.
type Verified struct {
	Manifest *Manifest
	Archive  *ocitar.Archive
	Bundle   *bundle.Bundle
	Root     v1.Descriptor // the bundle index
}

// Close closes the file.
func (v *Verified) Close() error { return v.Archive.Close() }

// Open opens the export file at path and verifies it (see Verify).
func Open(path string) (*Verified, error) {
	a, err := ocitar.Open(path)
	if err != nil {
		return nil, err
	}
	v, err := Verify(a)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Read verifies an export file of size bytes read through r.
func Read(r io.ReaderAt, size int64) (*Verified, error) {
	a, err := ocitar.Read(r, size, nil)
	if err != nil {
		return nil, err
	}
	return Verify(a)
}

// Verify checks all of an export file: every file is listed in the manifest
// with its size and checksum (and nothing else is in the archive), blob
// names match their content, and the bundle index is tagged with the
// revision, has the recorded digest, parses, and records the revision.
func Verify(a *ocitar.Archive) (*Verified, error) {
	mr, err := a.File(ManifestName)
	if err != nil {
		return nil, fmt.Errorf("not a ballast export (no %s): %w", ManifestName, err)
	}
	if mr.Size() > MaxManifestSize {
		return nil, fmt.Errorf("%s too large", ManifestName)
	}
	raw, err := io.ReadAll(mr)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	listed := map[string]File{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	for _, n := range a.Names() {
		if _, ok := listed[n]; !ok && n != ManifestName {
			return nil, fmt.Errorf("file %q is not listed in %s (tampered?)", n, ManifestName)
		}
	}
	for _, f := range m.Files {
		r, err := a.File(f.Name)
		if err != nil {
			return nil, fmt.Errorf("file %q listed in %s is missing", f.Name, ManifestName)
		}
		if r.Size() != f.Size {
			return nil, fmt.Errorf("file %q: %d bytes, manifest says %d", f.Name, r.Size(), f.Size)
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return nil, fmt.Errorf("file %q: %w", f.Name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return nil, fmt.Errorf("file %q: checksum sha256:%s, manifest says sha256:%s (corrupted)", f.Name, got, f.SHA256)
		}
		if hexName, ok := strings.CutPrefix(f.Name, LayoutPrefix+"/blobs/sha256/"); ok && hexName != f.SHA256 {
			return nil, fmt.Errorf("blob %q holds content sha256:%s", f.Name, f.SHA256)
		}
	}
	root, err := findTag(a, m.Revision)
	if err != nil {
		return nil, err
	}
	if root.Digest.String() != m.Bundle {
		return nil, fmt.Errorf("bundle index is %s, manifest says %s", root.Digest, m.Bundle)
	}
	r, err := a.File(LayoutPrefix + "/blobs/sha256/" + root.Digest.Hex)
	if err != nil {
		return nil, fmt.Errorf("bundle index %s: %w", root.Digest, err)
	}
	if r.Size() > oci.MaxManifestSize {
		return nil, fmt.Errorf("bundle index %s: too large", root.Digest)
	}
	raw, err = io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if err := oci.VerifyBytes(raw, root); err != nil {
		return nil, err
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		return nil, err
	}
	if b.Revision != m.Revision {
		return nil, fmt.Errorf("bundle records revision %s, manifest says %s", b.Revision, m.Revision)
	}
	return &Verified{Manifest: m, Archive: a, Bundle: b, Root: root}, nil
}

// findTag returns the descriptor tagged tag in the layout's index.json.
func findTag(a *ocitar.Archive, tag string) (v1.Descriptor, error) {
	r, err := a.File(LayoutPrefix + "/index.json")
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("bundle index for %s: %w", tag, err)
	}
	if r.Size() > oci.MaxManifestSize {
		return v1.Descriptor{}, fmt.Errorf("%s/index.json: too large", LayoutPrefix)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s/index.json: %w", LayoutPrefix, err)
	}
	for _, d := range idx.Manifests {
		if d.Annotations[annotationRefName] == tag {
			if err := oci.CheckDigest(d.Digest); err != nil {
				return v1.Descriptor{}, fmt.Errorf("%s/index.json: %w", LayoutPrefix, err)
			}
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("bundle index for %s: not tagged in %s/index.json", tag, LayoutPrefix)
}
