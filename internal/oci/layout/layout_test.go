package layout_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/ocitar"
)

func desc(mt types.MediaType, b []byte) v1.Descriptor {
	s := sha256.Sum256(b)
	return v1.Descriptor{MediaType: mt, Size: int64(len(b)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}}
}

// TestLayoutDirAndTar writes a blob and a tagged manifest into a directory
// layout, refuses a blob whose bytes do not match its digest, and reads the
// same content back from a tar of the directory.
func TestLayoutDirAndTar(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := layout.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("layer bytes")
	bd := desc(types.OCILayer, blob)
	if err := l.WriteBlob(ctx, bd, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	bad := desc(types.OCILayer, []byte("other bytes"))
	err = l.WriteBlob(ctx, bad, bytes.NewReader([]byte("evil bytes!")))
	if !errors.Is(err, oci.ErrDigestMismatch) {
		t.Fatalf("mismatched blob: %v, want ErrDigestMismatch", err)
	}
	if ok, _ := l.BlobExists(ctx, bad); ok {
		t.Fatal("a mismatched blob became visible")
	}
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	md := desc(types.OCIManifestSchema1, man)
	if err := l.WriteManifest(ctx, md, man, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ResolveTag(ctx, "v2"); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("absent tag: %v, want ErrNotFound", err)
	}

	// The same layout, as a tar read in place.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := ocitar.WriteTree(tw, dir, "oci", nil); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := ocitar.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*layout.Layout{"dir": l, "tar": layout.Tar(a, "oci")} {
		d, err := got.Resolve(ctx, "v1")
		if err != nil || d.Digest != md.Digest {
			t.Fatalf("%s: tag v1 = %v, %v", name, d.Digest, err)
		}
		raw, err := got.FetchManifest(ctx, md)
		if err != nil || !bytes.Equal(raw, man) {
			t.Fatalf("%s: manifest %q, %v", name, raw, err)
		}
		rc, err := got.OpenBlob(ctx, bd, 6)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rest := new(bytes.Buffer)
		_, _ = rest.ReadFrom(rc)
		rc.Close()
		if rest.String() != "bytes" {
			t.Fatalf("%s: blob from offset 6 = %q", name, rest)
		}
	}
	if err := layout.Tar(a, "oci").WriteBlob(ctx, bd, bytes.NewReader(blob)); err == nil || !oci.IsPermanent(err) {
		t.Fatalf("write to a tar layout: %v, want a permanent error", err)
	}
}

// FuzzLayoutIndex: index.json comes from outside (an export file carried on
// a disk); whatever it holds, opening the layout gives an error or
// descriptors with valid digests, never a panic.
func FuzzLayoutIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","size":3,"digest":"sha256:` +
		"0000000000000000000000000000000000000000000000000000000000000000" + `","annotations":{"org.opencontainers.image.ref.name":"x"}}]}`))
	f.Add([]byte(`{"manifests":[{"digest":"sha512:00"}]}`))
	f.Add([]byte(`not json`))
	dir := f.TempDir()
	if _, err := layout.New(dir); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, index []byte) {
		if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := layout.New(dir)
		if err != nil {
			return
		}
		tags, err := l.Tags()
		if err != nil {
			return
		}
		for _, d := range tags {
			if oci.CheckDigest(d.Digest) != nil {
				t.Fatalf("invalid digest accepted: %v", d.Digest)
			}
		}
		_, _ = l.ResolveTag(context.Background(), "x")
	})
}
