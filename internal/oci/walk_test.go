package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func hashOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// store holds manifests by repo@digest, as bundle's tests do.
type store struct{ manifests map[string][]byte }

func newStore() *store { return &store{manifests: map[string][]byte{}} }

func (s *store) Manifest(_ context.Context, repo string, d v1.Hash) ([]byte, error) {
	if b, ok := s.manifests[repo+"@"+d.String()]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("manifest %s: %w", d, ErrNotFound)
}

func (s *store) putJSON(t testing.TB, repo string, v any, mt types.MediaType) v1.Descriptor {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: hashOf(raw)}
	s.manifests[repo+"@"+d.Digest.String()] = raw
	return d
}

func blob(content string) v1.Descriptor {
	return v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(content)), Digest: hashOf([]byte(content))}
}

// multiArch stores an index of two platform manifests in repo.
func (s *store) multiArch(t testing.TB, repo, seed string) (v1.Descriptor, map[string][]v1.Hash) {
	perPlatform := map[string][]v1.Hash{}
	var children []v1.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := blob(seed + arch + "config")
		cfg.MediaType = types.OCIConfigJSON
		l := blob(seed + arch + "layer")
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{l}}
		d := s.putJSON(t, repo, m, types.OCIManifestSchema1)
		d.Platform = &v1.Platform{OS: "linux", Architecture: arch}
		children = append(children, d)
		perPlatform[arch] = []v1.Hash{d.Digest, cfg.Digest, l.Digest}
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children}
	return s.putJSON(t, repo, idx, types.OCIImageIndex), perPlatform
}

func FuzzChildren(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.image.manifest.v1+json","size":3,"digest":"sha256:`+strings.Repeat("a", 64)+`","platform":{"os":"linux","architecture":"arm64"}}]}`), true)
	f.Add([]byte(`{"schemaVersion":2,"config":{"size":3,"digest":"sha256:`+strings.Repeat("a", 64)+`"},"layers":[]}`), false)
	sel, _ := ParsePlatforms("linux/amd64")
	f.Fuzz(func(t *testing.T, raw []byte, index bool) {
		mt := types.OCIManifestSchema1
		if index {
			mt = types.OCIImageIndex
		}
		ms, bs, err := Children(raw, mt, sel)
		if err != nil {
			return
		}
		for _, d := range append(ms, bs...) {
			if CheckDigest(d.Digest) != nil || d.Size < 0 {
				t.Fatalf("invalid descriptor returned: %+v", d)
			}
		}
	})
}

func TestPlatforms(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"linux/amd64", "linux/amd64", false},
		{"linux/amd64, linux/arm/v7", "linux/amd64,linux/arm/v7", false},
		{"linux", "", true},
		{"linux/amd64/v1/x", "", true},
		{"linux//v1", "", true},
		{"Linux/AMD64", "", true},
	}
	for _, tc := range tests {
		ps, err := ParsePlatforms(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && ps.String() != tc.want) {
			t.Errorf("ParsePlatforms(%q) = %q, %v", tc.in, ps.String(), err)
		}
	}
	arm, _ := ParsePlatforms("linux/arm64")
	if !arm.Match(&v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}) || arm.Match(&v1.Platform{OS: "linux", Architecture: "amd64"}) || !arm.Match(nil) {
		t.Fatal("Match")
	}
}

func TestWalkOrder(t *testing.T) {
	s := newStore()
	d, per := s.multiArch(t, "r", "w")
	arm, _ := ParsePlatforms("linux/arm64")
	var order []v1.Hash
	err := Walk(context.Background(), fetcher{s, "r"}, d, arm, func(n Node) error {
		order = append(order, n.Descriptor.Digest)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []v1.Hash{per["arm64"][1], per["arm64"][2], per["arm64"][0], d.Digest}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

type fetcher struct {
	s    *store
	repo string
}

func (f fetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.s.Manifest(ctx, f.repo, d.Digest)
}
