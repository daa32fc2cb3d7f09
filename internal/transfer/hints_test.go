package transfer_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/testutil/linkproxy"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// indexBlobs lists the config and layer descriptors of every image of idx.
func indexBlobs(t *testing.T, idx v1.ImageIndex) []v1.Descriptor {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Descriptor
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		mf, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mf.Config)
		out = append(out, mf.Layers...)
	}
	return out
}

// TestCopyWithHints: hinted blobs are fetched once, land in the target
// only when a manifest reaches them, and one that none reaches is
// dropped from staging and counted; a hint that names nothing upstream
// does not fail the copy.
func TestCopyWithHints(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	ctx := context.Background()
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 2, 64<<10)
	root := pushIndex(t, up.Repo("a"), "v1", idx)
	// Another image in the same repository: its layer exists upstream,
	// but no manifest of root reaches it.
	other := testimage.Image(t, "linux/amd64", 1, 48<<10)
	ref, _ := name.ParseReference(up.Repo("a")+":other", name.Insecure)
	if err := remote.Write(ref, other); err != nil {
		t.Fatal(err)
	}
	ol, _ := other.Layers()
	odig, _ := ol[0].Digest()
	osize, _ := ol[0].Size()

	blobs := indexBlobs(t, idx)
	var want int64
	for _, b := range blobs {
		want += b.Size
	}
	bogus := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: "00000000000000000000000000000000000000000000000000000000000000aa"}, Size: 10}
	hints := append(append([]v1.Descriptor(nil), blobs...), v1.Descriptor{Digest: odig, Size: osize}, bogus)

	staging := t.TempDir()
	lay, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, transfer.WithStagingDir(staging), transfer.WithRetry(2, time.Millisecond, time.Millisecond))
	job := transfer.Job{Src: newRemote(t, up.Repo("a")), Dst: lay, Root: root, Tags: []string{"v1"}, Hints: hints}
	st, err := e.Copy(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	// Unused: the other image's layer (fetched) and the bogus one (not).
	// How many of the others moved bytes before the walk reached them
	// depends on timing; every byte crossed once either way.
	if st.HintsFetched < 1 || st.HintsFetched > len(blobs)+1 || st.HintsUnused != 2 || st.HintBytesUnused != osize {
		t.Fatalf("hints: %+v (want 1..%d fetched, 2 unused of %d bytes)", st, len(blobs)+1, osize)
	}
	if st.BlobsCopied != len(blobs) || st.BytesWritten != want || st.BytesRead != want+osize {
		t.Fatalf("stats %+v: want %d blobs, %d bytes written, %d read", st, len(blobs), want, want+osize)
	}
	for _, b := range blobs {
		if ok, err := lay.BlobExists(ctx, b); err != nil || !ok {
			t.Fatalf("blob %s not in the target: %v", b.Digest, err)
		}
	}
	if ok, _ := lay.BlobExists(ctx, v1.Descriptor{Digest: odig, Size: osize}); ok {
		t.Fatal("a hinted blob that no manifest reaches was written to the target")
	}
	if d, err := lay.Resolve(ctx, "v1"); err != nil || d.Digest != root.Digest {
		t.Fatalf("root: %v %v", d, err)
	}
	if ents, _ := os.ReadDir(staging); len(ents) != 0 {
		t.Fatalf("staging left %d entries", len(ents))
	}

	// Again, checking everything: the target holds every hinted blob it
	// needs, so none is fetched.
	e2 := newEngine(t, transfer.WithStagingDir(staging), transfer.WithTrustExistingRoots(false))
	st, err = e2.Copy(ctx, transfer.Job{Src: job.Src, Dst: lay, Root: root, Tags: []string{"v1"}, Hints: blobs})
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesRead != 0 || st.HintsFetched != 0 || st.BlobsSkipped != len(blobs) {
		t.Fatalf("re-run: %+v", st)
	}

	// Without a staging directory hints are not used.
	lay2, _ := layout.New(t.TempDir())
	st, err = newEngine(t).Copy(ctx, transfer.Job{Src: job.Src, Dst: lay2, Root: root, Hints: hints})
	if err != nil {
		t.Fatal(err)
	}
	if st.HintsFetched != 0 || st.BytesRead != want {
		t.Fatalf("no staging: %+v", st)
	}
}

// TestCopyWithHintsOverSlowLinkThatCuts: over a link with a round trip and
// a rate, hinted blobs start before their manifests arrive and go on into
// the target once reached, in the same download; cuts on the way resume
// from the staged bytes. Every byte crosses about once.
func TestCopyWithHintsOverSlowLinkThatCuts(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	ctx := context.Background()
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 2, 512<<10)
	root := pushIndex(t, up.Repo("a"), "v1", idx)
	blobs := indexBlobs(t, idx)
	var want int64
	for _, b := range blobs {
		want += b.Size
	}
	link := linkproxy.Start(t, up.Addr)
	link.SetDelay(30*time.Millisecond, 30*time.Millisecond)
	link.SetRate(4 << 20)
	link.CutEvery(300 << 10)
	lay, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	staging := t.TempDir()
	e := newEngine(t, transfer.WithStagingDir(staging), transfer.WithRetry(20, 10*time.Millisecond, 100*time.Millisecond))
	st, err := e.Copy(ctx, transfer.Job{Src: newRemote(t, link.Addr+"/a"), Dst: lay, Root: root, Tags: []string{"v1"}, Hints: blobs})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v; link carried %d for %d blob bytes, %d cuts", st, link.Down(), want, link.Cuts())
	if st.HintsFetched == 0 || st.HintsUnused != 0 || st.BlobsCopied != len(blobs) || st.BytesWritten != want {
		t.Fatalf("stats %+v", st)
	}
	if link.Cuts() == 0 {
		t.Fatal("the link never cut")
	}
	if st.BytesRead < want || st.BytesRead > want*101/100 {
		t.Fatalf("read %d bytes for %d", st.BytesRead, want)
	}
	for _, b := range blobs {
		if ok, err := lay.BlobExists(ctx, b); err != nil || !ok {
			t.Fatalf("blob %s not in the target: %v", b.Digest, err)
		}
	}
	if ents, _ := os.ReadDir(staging); len(ents) != 0 {
		t.Fatalf("staging left %d entries", len(ents))
	}
}

// TestCopyWithHintsThatLieAboutSizes: a hint is never trusted, its size
// included: hints whose sizes are smaller or larger than the blobs the
// manifests reach do not fail the copy, and every blob lands whole.
func TestCopyWithHintsThatLieAboutSizes(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	ctx := context.Background()
	idx := testimage.Index(t, []string{"linux/amd64"}, 3, 64<<10)
	root := pushIndex(t, up.Repo("a"), "v1", idx)
	blobs := indexBlobs(t, idx)
	var want int64
	for _, b := range blobs {
		want += b.Size
	}
	lies := []func(int64) int64{
		func(n int64) int64 { return n - 1 },
		func(n int64) int64 { return n + 4096 },
		func(int64) int64 { return 1 },
		func(int64) int64 { return 1 << 40 },
	}
	var hints []v1.Descriptor
	for i, b := range blobs {
		hints = append(hints, v1.Descriptor{Digest: b.Digest, Size: lies[i%len(lies)](b.Size)})
	}
	lay, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	staging := t.TempDir()
	e := newEngine(t, transfer.WithStagingDir(staging), transfer.WithRetry(3, time.Millisecond, time.Millisecond))
	st, err := e.Copy(ctx, transfer.Job{Src: newRemote(t, up.Repo("a")), Dst: lay, Root: root, Tags: []string{"v1"}, Hints: hints})
	if err != nil {
		t.Fatalf("copy with lying hints: %v (stats %+v)", err, st)
	}
	if st.BlobsCopied != len(blobs) || st.BytesWritten != want {
		t.Fatalf("stats %+v: want %d blobs, %d bytes", st, len(blobs), want)
	}
	for _, b := range blobs {
		if ok, err := lay.BlobExists(ctx, b); err != nil || !ok {
			t.Fatalf("blob %s not in the target: %v", b.Digest, err)
		}
	}
	if ents, _ := os.ReadDir(staging); len(ents) != 0 {
		t.Fatalf("staging left %d entries", len(ents))
	}
}
