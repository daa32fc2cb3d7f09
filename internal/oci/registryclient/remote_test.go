package registryclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

func open(t *testing.T, ref string) *registryclient.Remote {
	t.Helper()
	r, err := registryclient.New(ref, registryclient.WithInsecure(true), registryclient.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRemote exercises the client against a real Distribution registry:
// resolve, fetch and verify a manifest, blob presence by size, a blob
// upload the registry checks, a cross-repository mount, and the presence
// answers verify relies on.
func TestRemote(t *testing.T) {
	ctx := context.Background()
	up := regserver.Start(t, regserver.Options{})
	img := testimage.Image(t, "linux/amd64", 1, 4<<10)
	tag, _ := name.NewTag(up.Repo("a/img")+":v1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	if _, err := registryclient.New("Not A Repo"); err == nil {
		t.Fatal("bad reference accepted")
	}
	a := open(t, up.Repo("a/img"))
	if loc := a.Location(); loc != (oci.Location{Registry: up.Addr, Repository: "a/img"}) {
		t.Fatalf("location %+v", loc)
	}
	d, err := a.Resolve(ctx, "v1")
	if err != nil || d.Digest != want || d.MediaType != types.OCIManifestSchema1 {
		t.Fatalf("resolve v1: %+v, %v", d, err)
	}
	raw, err := a.FetchManifest(ctx, d)
	if err != nil || oci.VerifyBytes(raw, d) != nil {
		t.Fatalf("manifest: %v / %v", err, oci.VerifyBytes(raw, d))
	}
	if _, err := a.Resolve(ctx, "nope"); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("absent tag: %v, want ErrNotFound", err)
	}

	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	lsize, _ := layers[0].Size()
	layer := v1.Descriptor{Digest: ld, Size: lsize}
	if ok, err := a.BlobExists(ctx, layer); !ok || err != nil {
		t.Fatalf("layer present: %v %v", ok, err)
	}
	if ok, _ := a.BlobExists(ctx, v1.Descriptor{Digest: ld, Size: lsize + 1}); ok {
		t.Fatal("a blob of another size counted as present")
	}
	rc, err := a.OpenBlob(ctx, layer, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, rc)
	rc.Close()
	if n != lsize {
		t.Fatalf("blob read %d bytes, want %d", n, lsize)
	}

	b := open(t, up.Repo("b/img"))
	if ok, err := b.MountBlob(ctx, layer, "a/img"); !ok || err != nil {
		t.Fatalf("mount from a/img: %v %v", ok, err)
	}
	content := []byte("a small blob")
	sum := sha256.Sum256(content)
	bd := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, Size: int64(len(content))}
	if err := b.WriteBlob(ctx, bd, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	var he *registryclient.HTTPError
	if err := b.WriteBlob(ctx, bd, bytes.NewReader([]byte("other bytes!"))); !errors.As(err, &he) || he.Status != 400 {
		t.Fatalf("upload of bytes that do not match the digest: %v, want HTTP 400", err)
	}

	p := registryclient.NewPresence(up.Addr, registryclient.WithInsecure(true), registryclient.WithKeychain(authn.NewMultiKeychain()))
	if size, err := p.BlobSize(ctx, "b/img", ld); err != nil || size != lsize {
		t.Fatalf("presence of the mounted blob: %d %v", size, err)
	}
	if _, err := p.BlobSize(ctx, "b/img", want); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("absent blob: %v, want ErrNotFound", err)
	}
	if h, err := p.Tag(ctx, "a/img", "v1"); err != nil || h != want {
		t.Fatalf("tag: %v %v", h, err)
	}
	if raw, err := p.Manifest(ctx, "a/img", want); err != nil || len(raw) == 0 {
		t.Fatalf("manifest: %v", err)
	}
}
