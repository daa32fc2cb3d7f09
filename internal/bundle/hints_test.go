package bundle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci"
)

// repoFetcher reads one repository of a store.
type repoFetcher struct {
	s    *store
	repo string
}

func (f repoFetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.s.Manifest(ctx, f.repo, d.Digest)
}

func walkNodes(t *testing.T, s *store, repo string, root v1.Descriptor) []oci.Node {
	t.Helper()
	var nodes []oci.Node
	if err := oci.Walk(context.Background(), repoFetcher{s, repo}, root, nil, func(n oci.Node) error {
		nodes = append(nodes, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return nodes
}

func TestBlobHintsRoundTrip(t *testing.T) {
	s := newStore()
	d1, per := s.multiArch(t, "b", "one")
	d2, _ := s.multiArch(t, "b", "two")
	h1 := HintsFromWalk(walkNodes(t, s, "b", d1))
	if len(h1) != 4 {
		t.Fatalf("hints of a two-platform image: %d blobs, want 4: %+v", len(h1), h1)
	}
	for _, h := range h1 {
		arch := ""
		for a, ds := range per {
			for _, d := range ds[1:] {
				if d == h.Digest {
					arch = a
				}
			}
		}
		if len(h.Platforms) != 1 || h.Platforms[0] != "linux/"+arch {
			t.Fatalf("blob %s: platforms %v, want [linux/%s]", h.Digest, h.Platforms, arch)
		}
	}
	in := Bundle{Revision: rev, Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Images: []Image{
		{Ref: mustRef(t, "nginx:1.27"), Descriptor: d1, Blobs: h1},
		{Ref: mustRef(t, "ghcr.io/org/app:2"), Descriptor: d2}, // no hints for this one
	}}
	raw, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := BlobHints(b)
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by reference: docker.io first.
	if len(hs[0]) != 4 || hs[1] != nil {
		t.Fatalf("hints per entry: %d, %d", len(hs[0]), len(hs[1]))
	}
	for i, h := range hs[0] {
		if h.Digest != h1[i].Digest || h.Size != h1[i].Size || strings.Join(h.Platforms, ",") != strings.Join(h1[i].Platforms, ",") {
			t.Fatalf("hint %d: %+v, want %+v", i, h, h1[i])
		}
	}
	arm, _ := oci.ParsePlatforms("linux/arm64")
	n := 0
	for _, h := range hs[0] {
		if h.Selected(arm) {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("linux/arm64 selects %d hinted blobs, want 2", n)
	}

	// A bundle without hints says so.
	in.Images[0].Blobs = nil
	raw, _, _ = Build(in)
	b, _ = Parse(raw)
	if _, err := BlobHints(b); err != ErrNoHints {
		t.Fatalf("no hints: %v, want ErrNoHints", err)
	}
}

// Hints beyond the bounds are not written, and refused when read.
func TestBlobHintsBounds(t *testing.T) {
	s := newStore()
	d1, _ := s.multiArch(t, "b", "one")
	many := make([]BlobHint, MaxHintBlobs+1)
	for i := range many {
		many[i] = BlobHint{Digest: hashOf(fmt.Appendf(nil, "%d", i)), Size: 1}
	}
	in := Bundle{Revision: rev, Created: time.Now(), Images: []Image{{Ref: mustRef(t, "nginx:1.27"), Descriptor: d1, Blobs: many}}}
	raw, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), AnnotationBlobs) {
		t.Fatal("Build wrote hints beyond the bounds")
	}
	// Read side: an index written by something else.
	b, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := json.Marshal(many[:MaxHintBlobs/2+1])
	for i := range b.Images {
		b.Images[i].Descriptor.Annotations[AnnotationBlobs] = string(enc)
	}
	b.Images = append(b.Images, b.Images[0])
	if _, err := BlobHints(b); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("hints over the bound in sum: %v", err)
	}
}

func TestParseBlobHintsErrors(t *testing.T) {
	d := hashOf([]byte("x")).String()
	for _, c := range []struct{ in, want string }{
		{``, "not a JSON array"},
		{`{}`, "not a JSON array"},
		{`null`, "null"},
		{`[] []`, "trailing data"},
		{`[{"digest":"sha256:abc","size":1}]`, "hex digits"},
		{`[{"digest":"` + d + `","size":0}]`, "size 0 out of range"},
		{`[{"digest":"` + d + `","size":-5}]`, "out of range"},
		{`[{"digest":"` + d + `","size":1099511627777}]`, "out of range"},
		{`[{"digest":"` + d + `","size":1},{"digest":"` + d + `","size":1}]`, "listed twice"},
		{`[{"digest":"` + d + `","size":1,"platforms":["linux"]}]`, "platform"},
		{`[{"digest":"` + d + `","size":1,"extra":1}]`, "unknown field"},
		{`[` + strings.Repeat(`{"digest":"`+d+`","size":1},`, 1) + `{"digest":"` + hashOf([]byte("y")).String() + `","size":1099511627776}]`, "sum to more"},
		{strings.Repeat(" ", maxHintAnnotation+1), "at most"},
	} {
		_, err := ParseBlobHints(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseBlobHints(%.60q): %v, want an error containing %q", c.in, err, c.want)
		}
	}
	hs, err := ParseBlobHints(`[{"digest":"` + d + `","size":7,"platforms":["linux/arm/v7"]}]`)
	if err != nil || len(hs) != 1 || hs[0].Size != 7 {
		t.Fatalf("good hint: %v %+v", err, hs)
	}
}

func FuzzParseBlobHints(f *testing.F) {
	d := hashOf([]byte("x")).String()
	f.Add(`[{"digest":"` + d + `","size":7,"platforms":["linux/arm/v7"]}]`)
	f.Add(`[]`)
	f.Add(`[{"digest":"` + d + `","size":1},{"digest":"` + d + `","size":1}]`)
	f.Fuzz(func(t *testing.T, s string) {
		hs, err := ParseBlobHints(s)
		if err != nil {
			return
		}
		var total int64
		for _, h := range hs {
			if h.Size <= 0 || oci.CheckDigest(h.Digest) != nil {
				t.Fatalf("accepted a bad hint %+v", h)
			}
			total += h.Size
			_ = h.Selected(oci.Platforms{{OS: "linux", Architecture: "amd64"}})
		}
		if len(hs) > MaxHintBlobs || total > MaxHintBytes {
			t.Fatalf("accepted %d hints of %d bytes", len(hs), total)
		}
	})
}
