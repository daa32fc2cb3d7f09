// Package testimage makes random images for tests: single- and multi-arch,
// with OS and architecture set in each config (containerd and platform
// selection need them).
package testimage

import (
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image returns a random image for platform ("linux/arm64") with layers
// random layers of layerSize bytes each.
func Image(t testing.TB, platform string, layers int, layerSize int64) v1.Image {
	t.Helper()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	img := empty.Image
	for i := 0; i < layers; i++ {
		l, err := random.Layer(layerSize, types.OCIUncompressedLayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(mutate.ConfigMediaType(img, types.OCIConfigJSON), types.OCIManifestSchema1)
}

// Index returns a random multi-arch image index with one image per platform.
func Index(t testing.TB, platforms []string, layers int, layerSize int64) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, pl := range platforms {
		p, err := v1.ParsePlatform(pl)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        Image(t, pl, layers, layerSize),
			Descriptor: v1.Descriptor{Platform: p},
		})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if _, err := idx.Digest(); err != nil {
		t.Fatal(fmt.Errorf("index: %w", err))
	}
	return idx
}
