package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/linkproxy"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/toxiproxy"
	"github.com/ballast-dev/ballast/internal/transfer"
)

var anon = registryclient.WithKeychain(authn.NewMultiKeychain())

// pushIndex pushes idx to repo:tag and returns its descriptor.
func pushIndex(t testing.TB, repo, tag string, idx v1.ImageIndex, opts ...remote.Option) v1.Descriptor {
	t.Helper()
	ref, err := name.ParseReference(repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		t.Fatal(err)
	}
	d, err := partial.Descriptor(idx)
	if err != nil {
		t.Fatal(err)
	}
	return *d
}

func newRemote(t testing.TB, repo string, opts ...registryclient.Option) *registryclient.Remote {
	t.Helper()
	r, err := registryclient.New(repo, append([]registryclient.Option{registryclient.WithInsecure(true), anon}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newEngine(t testing.TB, opts ...transfer.Option) *transfer.Engine {
	t.Helper()
	e, err := transfer.New(append([]transfer.Option{transfer.WithRetry(8, 10*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// checkIndexAt reads idx back from repo and compares every manifest,
// platform and blob.
func checkIndexAt(t *testing.T, repo string, want v1.ImageIndex, platforms oci.Platforms) {
	t.Helper()
	src := newRemote(t, repo, registryclient.WithKeychain(authn.DefaultKeychain))
	wd, _ := want.Digest()
	wm, _ := want.IndexManifest()
	raw, err := src.FetchManifest(context.Background(), v1.Descriptor{Digest: wd})
	if err != nil {
		t.Fatalf("index %s not in %s: %v", wd, repo, err)
	}
	wraw, _ := want.RawManifest()
	if string(raw) != string(wraw) {
		t.Fatal("index bytes differ")
	}
	for _, m := range wm.Manifests {
		ok, err := src.ManifestExists(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if ok != platforms.Match(m.Platform) {
			t.Fatalf("platform %s: present %v, selected %v", m.Platform, ok, platforms.Match(m.Platform))
		}
		if !ok {
			continue
		}
		img, _ := want.Image(m.Digest)
		layers, _ := img.Layers()
		cd, _ := img.ConfigName()
		for _, h := range append([]v1.Hash{cd}, digests(layers)...) {
			rc, err := src.OpenBlob(context.Background(), v1.Descriptor{Digest: h}, 0)
			if err != nil {
				t.Fatalf("blob %s: %v", h, err)
			}
			got, _, _ := v1.SHA256(rc)
			rc.Close()
			if got != h {
				t.Fatalf("blob %s reads back as %s", h, got)
			}
		}
	}
}

func digests(ls []v1.Layer) []v1.Hash {
	var hs []v1.Hash
	for _, l := range ls {
		h, _ := l.Digest()
		hs = append(hs, h)
	}
	return hs
}

func TestCopyRegistryToRegistry(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	down := regserver.Start(t, regserver.Options{Auth: true})
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, 2, 64<<10)
	root := pushIndex(t, up.Repo("src/app"), "v1", idx)
	ctx := context.Background()

	downAuth := registryclient.WithAuth(&authn.Basic{Username: down.User, Password: down.Password})
	var events atomic.Int64
	e := newEngine(t, transfer.WithStagingDir(t.TempDir()), transfer.WithProgress(func(transfer.Event) { events.Add(1) }))
	job := transfer.Job{Src: newRemote(t, up.Repo("src/app")), Dst: newRemote(t, down.Repo("bundles/app"), downAuth), Root: root, Tags: []string{"v1"}}
	st, err := e.Copy(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.BlobsCopied != 9 || st.ManifestsWritten != 4 || st.BytesRead != st.BytesWritten || events.Load() == 0 {
		t.Fatalf("stats %+v, events %d", st, events.Load())
	}
	// Authenticated registry: check with the same credentials.
	t.Setenv("DOCKER_CONFIG", dockerConfig(t, down))
	checkIndexAt(t, down.Repo("bundles/app"), idx, nil)

	// Re-run: nothing moves.
	st, err = e.Copy(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesRead != 0 || st.BlobsCopied != 0 || st.ManifestsWritten != 0 {
		t.Fatalf("re-run moved content: %+v", st)
	}
	// Without trusting the root: everything is checked and skipped.
	e2 := newEngine(t, transfer.WithTrustExistingRoots(false))
	st, err = e2.Copy(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesRead != 0 || st.BlobsSkipped != 9 || st.ManifestsSkipped != 3 {
		t.Fatalf("deep re-run: %+v", st)
	}

	// Same registry, other repository: blobs are mounted, not copied.
	st, err = e.Copy(ctx, transfer.Job{Src: newRemote(t, up.Repo("src/app")), Dst: newRemote(t, up.Repo("bundles/x")), Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if st.BlobsMounted != 9 || st.BytesRead != 0 {
		t.Fatalf("mount: %+v", st)
	}
	checkIndexAt(t, up.Repo("bundles/x"), idx, nil)
}

func dockerConfig(t *testing.T, s *regserver.Server) string {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, s.Addr, s.User, s.Password)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCopyToLayoutPlatformsAndBack(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 1, 32<<10)
	root := pushIndex(t, up.Repo("a"), "v1", idx)
	ctx := context.Background()
	dir := t.TempDir()
	lay, err := layout.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	arm, _ := oci.ParsePlatforms("linux/arm64")
	e := newEngine(t)
	if _, err := e.Copy(ctx, transfer.Job{Src: newRemote(t, up.Repo("a")), Dst: lay, Root: root, Tags: []string{"v1"}, Platforms: arm}); err != nil {
		t.Fatal(err)
	}
	// Only arm64 content is in the layout.
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		ok, _ := lay.ManifestExists(ctx, m)
		if ok != (m.Platform.Architecture == "arm64") {
			t.Fatalf("%s present=%v", m.Platform, ok)
		}
	}
	// Layout → registry: the full index needs its children there
	// (Distribution checks), so copy all platforms from a full layout.
	full, _ := layout.New(t.TempDir())
	if _, err := e.Copy(ctx, transfer.Job{Src: newRemote(t, up.Repo("a")), Dst: full, Root: root, Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	d, err := full.Resolve(ctx, "v1")
	if err != nil || d.Digest != root.Digest {
		t.Fatalf("layout tag: %v %v", d, err)
	}
	if _, err := e.Copy(ctx, transfer.Job{Src: full, Dst: newRemote(t, up.Repo("b")), Root: d}); err != nil {
		t.Fatal(err)
	}
	checkIndexAt(t, up.Repo("b"), idx, nil)
}

// TestCopyPlatformsNormalized: an index whose arm64 entry has no variant (as
// buildx writes it) and a selection of linux/arm64/v8 (as Docker Hub labels
// it) are one platform; a selection the index has nothing for fails the
// copy, naming what it has, instead of copying an index with no children.
func TestCopyPlatformsNormalized(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 1, 16<<10)
	root := pushIndex(t, up.Repo("a"), "v1", idx)
	ctx := context.Background()
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		if m.Platform.Variant != "" {
			t.Fatalf("test image has variant %q: the case needs none", m.Platform.Variant)
		}
	}
	e := newEngine(t)

	v8, _ := oci.ParsePlatforms("linux/arm64/v8")
	lay, _ := layout.New(t.TempDir())
	st, err := e.Copy(ctx, transfer.Job{Src: newRemote(t, up.Repo("a")), Dst: lay, Root: root, Tags: []string{"v1"}, Platforms: v8})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		ok, _ := lay.ManifestExists(ctx, m)
		if ok != (m.Platform.Architecture == "arm64") {
			t.Fatalf("%s present=%v after a linux/arm64/v8 copy", m.Platform, ok)
		}
	}
	if st.BlobsCopied != 2 { // arm64's config and layer
		t.Fatalf("copied %d blobs, want 2", st.BlobsCopied)
	}

	riscv, _ := oci.ParsePlatforms("linux/riscv64")
	empty, _ := layout.New(t.TempDir())
	_, err = e.Copy(ctx, transfer.Job{Src: newRemote(t, up.Repo("a")), Dst: empty, Root: root, Tags: []string{"v1"}, Platforms: riscv})
	if !errors.Is(err, oci.ErrNoPlatform) || !strings.Contains(err.Error(), "it has linux/amd64, linux/arm64") {
		t.Fatalf("copy for a platform the index lacks: %v, want ErrNoPlatform naming linux/amd64, linux/arm64", err)
	}
	if _, err := empty.ResolveTag(ctx, "v1"); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("root written although nothing was selected: %v", err)
	}
}

// corruptSource flips a byte of every blob it serves.
type corruptSource struct {
	transfer.Source
	opens atomic.Int32
}

func (c *corruptSource) OpenBlob(ctx context.Context, d v1.Descriptor, off int64) (io.ReadCloser, error) {
	c.opens.Add(1)
	rc, err := c.Source.OpenBlob(ctx, d, off)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if len(b) > 0 {
		b[len(b)/2] ^= 0xff
	}
	return io.NopCloser(strings.NewReader(string(b))), nil
}

func TestDigestMismatchIsRefused(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64"}, 1, 32<<10)
	root := pushIndex(t, up.Repo("a"), "v1", idx)
	ctx := context.Background()
	for name, dst := range map[string]transfer.Target{
		"registry": newRemote(t, up.Repo("other")),
		"layout":   must(layout.New(t.TempDir())),
	} {
		t.Run(name, func(t *testing.T) {
			src := &corruptSource{Source: newRemote(t, up.Repo("a"))}
			e := newEngine(t, transfer.WithConcurrency(1), transfer.WithStagingDir(t.TempDir()))
			_, err := e.Copy(ctx, transfer.Job{Src: src, Dst: dst, Root: root})
			if !errors.Is(err, transfer.ErrDigestMismatch) || !transfer.IsPermanent(err) {
				t.Fatalf("err = %v, want a permanent digest mismatch", err)
			}
			if n := src.opens.Load(); n != 2 {
				t.Fatalf("blob fetched %d times, want 2 (retried once)", n)
			}
			if ok, _ := dst.ManifestExists(ctx, root); ok {
				t.Fatal("root written despite a bad blob")
			}
			im, _ := idx.IndexManifest()
			img, _ := idx.Image(im.Manifests[0].Digest)
			cfg, _ := img.ConfigName()
			ls, _ := img.Layers()
			for _, h := range append([]v1.Hash{cfg}, digests(ls)...) {
				sz := int64(0)
				if h == cfg {
					m, _ := img.Manifest()
					sz = m.Config.Size
				} else {
					sz = 32 << 10
				}
				if ok, _ := dst.BlobExists(ctx, v1.Descriptor{Digest: h, Size: sz}); ok {
					t.Fatalf("bad blob %s became visible", h)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// countingTransport counts response body bytes: what crossed the link.
type countingTransport struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		resp.Body = &countingBody{resp.Body, &c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestResumeOverCuttingLink copies a bundle of 16 MB layers through a proxy
// that closes every connection after 3 MB: it completes, and the bytes the
// proxy carried stay within 1% of the bundle.
func TestResumeOverCuttingLink(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 2, 16<<20)
	root := pushIndex(t, up.Repo("big"), "v1", idx)
	link := linkproxy.Start(t, up.Addr)
	link.CutEvery(3 << 20)

	src := newRemote(t, link.Addr+"/big")
	dst := must(layout.New(t.TempDir()))
	var maxDone, total atomic.Int64
	e := newEngine(t, transfer.WithStagingDir(t.TempDir()), transfer.WithConcurrency(2), transfer.WithProgress(func(ev transfer.Event) {
		if ev.Kind == transfer.Retrying || ev.Kind == transfer.ManifestDone {
			return // these carry no byte counts
		}
		total.Store(ev.Total)
		for {
			m := maxDone.Load()
			if ev.Done <= m || maxDone.CompareAndSwap(m, ev.Done) {
				break
			}
		}
	}))
	st, err := e.Copy(context.Background(), transfer.Job{Src: src, Dst: dst, Root: root, Tags: []string{"v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if maxDone.Load() != total.Load() || total.Load() == 0 {
		t.Fatalf("progress reached %d of %d", maxDone.Load(), total.Load())
	}
	size := bundleSize(t, idx)
	ratio := float64(link.Down()) / float64(size)
	t.Logf("bundle %d bytes, the link carried %d (%.4fx), %d cuts, retries %d", size, link.Down(), ratio, link.Cuts(), st.Retries)
	if link.Cuts() < 20 || st.Retries == 0 {
		t.Fatalf("the proxy cut %d connections: a 64 MiB copy cut every 3 MiB needs about 20; test is not testing resume", link.Cuts())
	}
	if ratio > 1.01 {
		t.Fatalf("the link carried %.4fx the bundle, want <= 1.01", ratio)
	}
	verifyLayout(t, dst, idx)
}

func bundleSize(t testing.TB, idx v1.ImageIndex) int64 {
	raw, _ := idx.RawManifest()
	n := int64(len(raw))
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		img, _ := idx.Image(m.Digest)
		mraw, _ := img.RawManifest()
		man, _ := img.Manifest()
		n += int64(len(mraw)) + man.Config.Size
		for _, l := range man.Layers {
			n += l.Size
		}
	}
	return n
}

func verifyLayout(t *testing.T, lay *layout.Layout, idx v1.ImageIndex) {
	t.Helper()
	ctx := context.Background()
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		img, _ := idx.Image(m.Digest)
		man, _ := img.Manifest()
		for _, d := range append([]v1.Descriptor{man.Config}, man.Layers...) {
			rc, err := lay.OpenBlob(ctx, d, 0)
			if err != nil {
				t.Fatal(err)
			}
			h, n, _ := v1.SHA256(rc)
			rc.Close()
			if h != d.Digest || n != d.Size {
				t.Fatalf("blob %s: got %s/%d", d.Digest, h, n)
			}
		}
	}
}

// TestResumeAfterCancel cancels a copy mid-blob and continues with a new
// engine on the same staging directory: the second run reads only what the
// first did not. This is a clean cancel in one process (the failed attempt
// checkpoints); crashes are TestKillNine's (a real SIGKILL).
func TestResumeAfterCancel(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64"}, 1, 24<<20)
	root := pushIndex(t, up.Repo("big"), "v1", idx)
	staging := t.TempDir()
	dst := must(layout.New(t.TempDir()))
	ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
	src := newRemote(t, up.Repo("big"), registryclient.WithTransport(ct))

	ctx, cancel := context.WithCancel(context.Background())
	e1 := newEngine(t, transfer.WithStagingDir(staging), transfer.WithBandwidth(16<<20), transfer.WithProgress(func(ev transfer.Event) {
		if ev.Kind == transfer.BlobProgress && ev.Offset > 12<<20 {
			cancel()
		}
	}))
	st1, err := e1.Copy(ctx, transfer.Job{Src: src, Dst: dst, Root: root})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	e2 := newEngine(t, transfer.WithStagingDir(staging))
	st2, err := e2.Copy(context.Background(), transfer.Job{Src: src, Dst: dst, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	size := bundleSize(t, idx)
	t.Logf("first run read %d, second %d, bundle %d, link total %d", st1.BytesRead, st2.BytesRead, size, ct.n.Load())
	if st1.BytesRead < 8<<20 || st2.BytesRead > size-(8<<20) {
		t.Fatalf("second run did not resume: %d then %d of %d", st1.BytesRead, st2.BytesRead, size)
	}
	if float64(ct.n.Load()) > 1.05*float64(size) {
		t.Fatalf("link bytes %d for a %d byte bundle", ct.n.Load(), size)
	}
	verifyLayout(t, dst, idx)
	if ents, _ := os.ReadDir(staging); len(ents) != 0 {
		t.Fatalf("staging not cleaned: %v", ents)
	}
}

// TestStalledLinkIsRetried stalls the link mid-blob (connections open, no
// data) for a while: the idle timeout turns it into a retry, and the copy
// resumes where it stopped once data flows again.
func TestStalledLinkIsRetried(t *testing.T) {
	up := regserver.Start(t, regserver.Options{})
	idx := testimage.Index(t, []string{"linux/amd64"}, 1, 16<<20)
	root := pushIndex(t, up.Repo("big"), "v1", idx)
	proxy := toxiproxy.Start(t, up.Addr)
	ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
	src := newRemote(t, proxy.Addr+"/big", registryclient.WithTransport(ct), registryclient.WithIdleTimeout(300*time.Millisecond))
	dst := must(layout.New(t.TempDir()))
	var once atomic.Bool
	stalled := make(chan struct{})
	e := newEngine(t, transfer.WithStagingDir(t.TempDir()), transfer.WithBandwidth(32<<20),
		transfer.WithRetry(10, 50*time.Millisecond, 200*time.Millisecond),
		transfer.WithProgress(func(ev transfer.Event) {
			if ev.Kind == transfer.BlobProgress && ev.Offset > 4<<20 && once.CompareAndSwap(false, true) {
				// Not inline: adding a toxic waits for the proxy's
				// links, one of which waits for this reader.
				go func() { proxy.Stall(); close(stalled) }()
			}
		}))
	go func() {
		<-stalled
		time.Sleep(time.Second)
		proxy.Remove("stall")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := e.Copy(ctx, transfer.Job{Src: src, Dst: dst, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if !once.Load() || st.Retries == 0 {
		t.Fatalf("no stall happened: %+v", st)
	}
	size := bundleSize(t, idx)
	t.Logf("retries %d, link bytes %d for %d", st.Retries, ct.n.Load(), size)
	if float64(ct.n.Load()) > 1.05*float64(size) {
		t.Fatalf("link bytes %d for a %d byte bundle", ct.n.Load(), size)
	}
	verifyLayout(t, dst, idx)
}
