package demo

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/imageref"
)

const mib = 1 << 20

// layerSpec is one layer: its content is size pseudo-random bytes seeded by
// name, so the same name always makes the same layer (shared base layers
// are stored and moved once).
type layerSpec struct {
	name string
	size float64 // MiB, before Options.Scale
	// edit, when set, makes a rebuilt version of the layer: the same file
	// with a sixteenth of it rewritten and a little appended, seeded by
	// edit (what a sub-layer delta moves instead of the layer).
	edit string
}

type platformSpec struct {
	os, arch string
	layers   []layerSpec
}

// imageSpec describes one image of the demo's "public" registries. More
// than one platform makes a multi-platform index.
type imageSpec struct {
	platforms []platformSpec
}

var (
	baseAMD64 = layerSpec{"debian-bookworm-slim/amd64", 14, ""}
	baseARM64 = layerSpec{"debian-bookworm-slim/arm64", 13, ""}
)

// catalog holds the images of the example apps with sizes near the real
// ones. Anything else an app names (a renderer may find more than the demo
// knows) gets a small image on the shared base.
var catalog = map[string]imageSpec{
	"docker.io/library/busybox:1.36.1": {[]platformSpec{{"linux", "amd64", []layerSpec{{"busybox-1.36.1", 2, ""}}}}},
	"docker.io/library/nginx:1.27.1": {[]platformSpec{
		{"linux", "amd64", []layerSpec{baseAMD64, {"nginx-1.27.1/amd64", 9, ""}, {"nginx-1.27.1-conf", 0.1, ""}}},
		{"linux", "arm64", []layerSpec{baseARM64, {"nginx-1.27.1/arm64", 8, ""}, {"nginx-1.27.1-conf", 0.1, ""}}},
	}},
	"docker.io/library/redis:7.4.1":                 {[]platformSpec{{"linux", "amd64", []layerSpec{baseAMD64, {"redis-7.4.1", 11, ""}}}}},
	"ghcr.io/ballast-dev/shop-api:1.4.0":            {[]platformSpec{{"linux", "amd64", shopAPI}}},
	"ghcr.io/ballast-dev/shop-api:1.4.1":            {[]platformSpec{{"linux", "amd64", []layerSpec{baseAMD64, {"shop-api-runtime", 12, ""}, {"shop-api-1.4.0", 3, "shop-api-1.4.1"}}}}},
	"registry.example.com:5000/shop/payments:0.9.3": {[]platformSpec{{"linux", "amd64", []layerSpec{baseAMD64, {"payments-0.9.3", 9, ""}}}}},
}

var shopAPI = []layerSpec{baseAMD64, {"shop-api-runtime", 12, ""}, {"shop-api-1.4.0", 3, ""}}

// The second revision changes one image: a new tag of shop-api whose app
// layer is rebuilt (a sixteenth of its file changed): bundle publishes a
// delta of it, and the edge makes the layer from the one it holds.
const (
	changedImage = "ghcr.io/ballast-dev/shop-api:1.4.0"
	changedTo    = "ghcr.io/ballast-dev/shop-api:1.4.1"
)

func specFor(ref string) imageSpec {
	if s, ok := catalog[ref]; ok {
		return s
	}
	return imageSpec{[]platformSpec{{"linux", "amd64", []layerSpec{baseAMD64, {ref, 5, ""}}}}}
}

// layerBytes makes the layer: an uncompressed tar with one file of
// pseudo-random (incompressible, like real compressed layers) bytes.
func layerBytes(l layerSpec, scale float64) ([]byte, error) {
	size := max(int64(l.size*scale*mib), 4096)
	seed := sha256.Sum256([]byte(l.name))
	rng := rand.NewChaCha8(seed)
	data := make([]byte, size)
	_, _ = rng.Read(data) // ChaCha8.Read never fails
	if l.edit != "" {
		erng := rand.NewChaCha8(sha256.Sum256([]byte(l.edit)))
		_, _ = erng.Read(data[size/3 : size/3+size/16])
		more := make([]byte, size/64)
		_, _ = erng.Read(more)
		data = append(data, more...)
		size = int64(len(data))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "opt/demo/" + fmt.Sprintf("%x", seed[:8]) + ".bin", Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func buildImage(p platformSpec, ref string, scale float64) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range p.layers {
		b, err := layerBytes(l, scale)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(b, types.OCIUncompressedLayer), MediaType: types.OCIUncompressedLayer})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.os, p.arch
	cf.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cf.Config.Entrypoint = []string{"/opt/demo/run"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.ref.name": ref, "io.ballast.demo": "true"}
	return mutate.ConfigFile(img, cf)
}

// blobSet is a set of blobs with their sizes.
type blobSet map[v1.Hash]int64

func (b blobSet) add(o blobSet) {
	for h, n := range o {
		b[h] = n
	}
}

func (b blobSet) bytes() int64 {
	var n int64
	for _, s := range b {
		n += s
	}
	return n
}

// pushImage makes the image ref names and pushes it to the cloud registry
// under its edge-style name (docker.io/library/nginx,
// registry.example.com_5000/shop/payments), where ?ns= requests find it.
// It returns the blobs (config and layers) of each platform ("linux/amd64").
func pushImage(ctx context.Context, cloud *cloudRegistry, ref string, scale float64) (map[string]blobSet, error) {
	r, err := imageref.Parse(ref)
	if err != nil {
		return nil, err
	}
	dst, err := name.ParseReference(cloud.addr+"/"+r.EdgeRepository()+":"+r.Tag, name.Insecure)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(cloud.reg.Transport())}
	spec := specFor(ref)
	blobs := map[string]blobSet{}
	var imgs []v1.Image
	for _, p := range spec.platforms {
		img, err := buildImage(p, ref, scale)
		if err != nil {
			return nil, err
		}
		if blobs[p.os+"/"+p.arch], err = imageBlobs(img); err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	if len(imgs) == 1 {
		return blobs, remote.Write(dst, imgs[0], opts...)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, p := range spec.platforms {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: imgs[i], Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.os, Architecture: p.arch}}})
	}
	return blobs, remote.WriteIndex(dst, idx, opts...)
}

func imageBlobs(img v1.Image) (blobSet, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	b := blobSet{m.Config.Digest: m.Config.Size}
	for _, l := range m.Layers {
		b[l.Digest] = l.Size
	}
	return b, nil
}
