// Package layout reads and writes OCI image layouts
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md): a
// directory (read and write) or a tar of one (read only, in place). A
// *Layout is a transfer.Source and transfer.Target; tags are index.json
// entries annotated with org.opencontainers.image.ref.name. Writes are
// crash-safe (temp file, fsync, rename, fsync the directory).
package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/ocitar"
)

// AnnotationRefName is the OCI image layout annotation naming a tag in
// index.json.
const AnnotationRefName = "org.opencontainers.image.ref.name"

const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// Layout is an OCI image layout: a directory (transfer.Source and
// transfer.Target) or, read only, a tar of one (Tar). Absent content is an
// error wrapping oci.ErrNotFound. Tags are index.json entries annotated with
// org.opencontainers.image.ref.name.
type Layout struct {
	files layoutFiles
	dir   string // "" for read-only layouts
	mu    sync.Mutex
}

// layoutFiles reads files of a layout by slash-separated path.
type layoutFiles interface {
	open(name string) (io.ReaderAt, int64, io.Closer, error)
}

type dirFiles string

func (d dirFiles) open(name string) (io.ReaderAt, int64, io.Closer, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil, fmt.Errorf("%s: %w", name, oci.ErrNotFound)
	}
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, fi.Size(), f, nil
}

// New opens the OCI layout in dir, creating an empty one (oci-layout,
// index.json, blobs/sha256) if dir does not exist or is empty.
func New(dir string) (*Layout, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	l := &Layout{files: dirFiles(dir), dir: dir}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(filepath.Join(dir, "oci-layout"), []byte(ociLayoutFile), 0o600); err != nil {
			return nil, fmt.Errorf("oci layout %s: %w", dir, err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), 0o600); err != nil {
			return nil, fmt.Errorf("oci layout %s: %w", dir, err)
		}
	}
	if _, err := l.index(); err != nil {
		return nil, err
	}
	return l, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

func (l *Layout) index() (*v1.IndexManifest, error) {
	r, n, c, err := l.files.open("index.json")
	if err != nil {
		return nil, fmt.Errorf("oci layout index.json: %w", err)
	}
	defer c.Close()
	if n > oci.MaxManifestSize {
		return nil, fmt.Errorf("oci layout index.json: %d bytes is too large", n)
	}
	raw, err := io.ReadAll(io.NewSectionReader(r, 0, n))
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("oci layout index.json: %w", err)
	}
	for i, d := range idx.Manifests {
		if err := oci.CheckDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("oci layout index.json manifests[%d]: %w", i, err)
		}
	}
	return &idx, nil
}

// Tags returns the tagged descriptors of index.json.
func (l *Layout) Tags() ([]v1.Descriptor, error) {
	idx, err := l.index()
	if err != nil {
		return nil, err
	}
	return idx.Manifests, nil
}

// Resolve implements transfer.Source: a tag from index.json, or a digest.
func (l *Layout) Resolve(ctx context.Context, ref string) (v1.Descriptor, error) {
	if h, err := v1.NewHash(ref); err == nil {
		raw, err := l.readBlob(h, oci.MaxManifestSize)
		if err != nil {
			return v1.Descriptor{}, err
		}
		var probe struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		_ = json.Unmarshal(raw, &probe)
		return v1.Descriptor{MediaType: probe.MediaType, Size: int64(len(raw)), Digest: h}, nil
	}
	return l.ResolveTag(ctx, ref)
}

// ResolveTag implements transfer.Target.
func (l *Layout) ResolveTag(_ context.Context, tag string) (v1.Descriptor, error) {
	idx, err := l.index()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationRefName] == tag {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("tag %q: %w", tag, oci.ErrNotFound)
}

func (l *Layout) readBlob(h v1.Hash, limit int64) ([]byte, error) {
	if err := oci.CheckDigest(h); err != nil {
		return nil, err
	}
	r, n, c, err := l.files.open(blobPath(h))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if n > limit {
		return nil, fmt.Errorf("blob %s: %d bytes exceeds %d", h, n, limit)
	}
	return io.ReadAll(io.NewSectionReader(r, 0, n))
}

// FetchManifest implements transfer.Source.
func (l *Layout) FetchManifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	return l.readBlob(d.Digest, oci.MaxManifestSize)
}

// OpenBlob implements transfer.Source.
func (l *Layout) OpenBlob(_ context.Context, d v1.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := oci.CheckDigest(d.Digest); err != nil {
		return nil, err
	}
	r, n, c, err := l.files.open(blobPath(d.Digest))
	if err != nil {
		return nil, err
	}
	if offset > n {
		c.Close()
		return nil, fmt.Errorf("blob %s: offset %d past its %d bytes", d.Digest, offset, n)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(r, offset, n-offset), c}, nil
}

// BlobExists implements transfer.Target.
func (l *Layout) BlobExists(_ context.Context, d v1.Descriptor) (bool, error) {
	if err := oci.CheckDigest(d.Digest); err != nil {
		return false, err
	}
	_, n, c, err := l.files.open(blobPath(d.Digest))
	if errors.Is(err, oci.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.Close()
	return n == d.Size, nil
}

// ManifestExists implements transfer.Target.
func (l *Layout) ManifestExists(ctx context.Context, d v1.Descriptor) (bool, error) {
	return l.BlobExists(ctx, d)
}

// WriteBlob implements transfer.Target: temp file in the blob directory,
// verified as it is written (oci.VerifyReader, a second check beside the
// engine's), fsync, rename, fsync the directory.
func (l *Layout) WriteBlob(ctx context.Context, d v1.Descriptor, r io.Reader) error {
	if l.dir == "" {
		return oci.Permanent(errors.New("oci layout is read-only"))
	}
	if err := oci.CheckDigest(d.Digest); err != nil {
		return oci.Permanent(err)
	}
	dir := filepath.Join(l.dir, "blobs", d.Digest.Algorithm)
	tmp, err := os.CreateTemp(dir, ".tmp-"+d.Digest.Hex+"-*")
	if err != nil {
		return oci.Permanent(fmt.Errorf("oci layout: %w", err))
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, oci.VerifyReader(&ctxReader{ctx, r}, d)); err != nil {
		return fmt.Errorf("oci layout: blob %s: %w", d.Digest, err)
	}
	if err := tmp.Sync(); err != nil {
		return oci.Permanent(fmt.Errorf("oci layout: %w", err))
	}
	if err := tmp.Close(); err != nil {
		return oci.Permanent(fmt.Errorf("oci layout: %w", err))
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, d.Digest.Hex)); err != nil {
		return oci.Permanent(fmt.Errorf("oci layout: %w", err))
	}
	return atomicfile.SyncDir(dir)
}

// ctxReader stops a local copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// WriteManifest implements transfer.Target. A tag replaces index.json's entry of the
// same name; index.json is rewritten atomically.
func (l *Layout) WriteManifest(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error {
	if ok, err := l.BlobExists(ctx, d); err != nil {
		return err
	} else if !ok {
		if err := l.WriteBlob(ctx, d, bytes.NewReader(raw)); err != nil {
			return err
		}
	}
	if tag == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx, err := l.index()
	if err != nil {
		return err
	}
	entry := v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest, ArtifactType: d.ArtifactType,
		Platform: d.Platform, Annotations: map[string]string{AnnotationRefName: tag}}
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if m.Annotations[AnnotationRefName] != tag {
			kept = append(kept, m)
		}
	}
	idx.Manifests = append(kept, entry)
	idx.SchemaVersion = 2
	idx.MediaType = types.OCIImageIndex
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(l.dir, "index.json"), out, 0o600)
}

// Tar returns the read-only OCI layout stored under prefix ("" for the
// archive root) of a tar archive, read in place.
func Tar(a *ocitar.Archive, prefix string) *Layout {
	return &Layout{files: tarFiles{a, prefix}}
}

type tarFiles struct {
	a      *ocitar.Archive
	prefix string
}

func (t tarFiles) open(name string) (io.ReaderAt, int64, io.Closer, error) {
	r, err := t.a.File(path.Join(t.prefix, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil, fmt.Errorf("%s: %w", name, oci.ErrNotFound)
	}
	if err != nil {
		return nil, 0, nil, err
	}
	return r, r.Size(), io.NopCloser(nil), nil
}
