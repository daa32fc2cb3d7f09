package transfer_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// gatedSource holds back the manifest gated until some blob has been
// opened, and counts blob opens per digest.
type gatedSource struct {
	transfer.Source
	gated  v1.Hash
	opened chan struct{}
	once   sync.Once
	mu     sync.Mutex
	opens  map[v1.Hash]int
}

func (g *gatedSource) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Digest == g.gated {
		select {
		case <-g.opened:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Source.FetchManifest(ctx, d)
}

func (g *gatedSource) OpenBlob(ctx context.Context, d v1.Descriptor, off int64) (io.ReadCloser, error) {
	g.mu.Lock()
	g.opens[d.Digest]++
	g.mu.Unlock()
	g.once.Do(func() { close(g.opened) })
	return g.Source.OpenBlob(ctx, d, off)
}

// Blobs start while other manifests are still arriving: the second image's
// manifest is only served once a blob is being fetched, which a copy that
// walks every manifest before any blob never reaches. A layer the two
// images share is fetched once (the second target mounts it).
func TestBlobsStartBeforeEveryManifest(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	a := testimage.Image(t, "linux/amd64", 2, 64<<10)
	extra, err := random.Layer(64<<10, "application/vnd.oci.image.layer.v1.tar")
	if err != nil {
		t.Fatal(err)
	}
	b, err := mutate.AppendLayers(a, extra)
	if err != nil {
		t.Fatal(err)
	}
	var roots []v1.Descriptor
	for _, img := range []v1.Image{a, b} {
		d, _ := partial.Descriptor(img)
		ref, _ := name.NewDigest(up.Repo("src")+"@"+d.Digest.String(), name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, *d)
	}
	src := &gatedSource{Source: newRemote(t, up.Repo("src")), gated: roots[1].Digest, opened: make(chan struct{}), opens: map[v1.Hash]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEngine(t, transfer.WithStagingDir(t.TempDir()))
	st, err := e.Copy(ctx,
		transfer.Job{Src: src, Dst: newRemote(t, up.Repo("dst/a")), Root: roots[0]},
		transfer.Job{Src: src, Dst: newRemote(t, up.Repo("dst/b")), Root: roots[1]})
	if err != nil {
		t.Fatalf("copy: %v (a copy that fetches every manifest before any blob waits here forever)", err)
	}
	for h, n := range src.opens {
		if n != 1 {
			t.Errorf("blob %s fetched %d times", h, n)
		}
	}
	// a: config + 2 layers; b: its own config + its extra layer.
	if len(src.opens) != 5 || st.BlobsMounted != 2 {
		t.Errorf("%d blobs fetched, %d mounted; want 5 and 2 (stats %+v)", len(src.opens), st.BlobsMounted, st)
	}
	for i, repo := range []string{"dst/a", "dst/b"} {
		ref, _ := name.NewDigest(up.Repo(repo)+"@"+roots[i].Digest.String(), name.Insecure)
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateImage(img); err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
	}
}

func validateImage(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
