package syncer_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// layeredImage is an OCI image of the given layers for linux/amd64.
func layeredImage(t testing.TB, layers ...layergen.Layer) v1.Image {
	return layergen.Image(t, layers...)
}

// publishDeltas runs bundle's delta step against the upstream registry
// directly (CI's side of the link).
func publishDeltas(t testing.TB, s *site, rev string, bases []string, images map[string]artifact) *release.DeltaSummary {
	t.Helper()
	repo, err := registryclient.New(s.up.Repo(s.bundles), registryclient.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := transfer.New()
	if err != nil {
		t.Fatal(err)
	}
	var ims []bundle.Image
	for ref, a := range images {
		r, _ := imageref.Parse(ref)
		d, _ := a.Digest()
		mt, _ := a.MediaType()
		n, _ := a.Size()
		ims = append(ims, bundle.Image{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: n}})
	}
	sum, err := release.PublishDeltas(context.Background(), eng, repo, rev, ims, bases, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// edgeBlobDigest reads a layer back from the edge registry and checks its
// bytes against its digest.
func edgeBlobVerified(t testing.TB, s *site, image string, d v1.Descriptor) {
	t.Helper()
	r, _ := imageref.Parse(image)
	rc, err := registryclient.New("127.0.0.1:1/"+r.EdgeRepository(), registryclient.WithInsecure(true), registryclient.WithTransport(s.reg.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	body, err := rc.OpenBlob(context.Background(), d, 0)
	if err != nil {
		t.Fatalf("edge blob %s: %v", d.Digest, err)
	}
	defer body.Close()
	if _, err := io.Copy(io.Discard, oci.VerifyReader(body, d)); err != nil {
		t.Fatalf("edge blob %s: %v", d.Digest, err)
	}
}

// Two revisions of an app image (a Go service layer, a root filesystem
// layer, a static-assets layer; gzip and zstd) cross the real link: the
// first whole, the second as deltas made at bundle time. The edge ends
// with every layer byte-identical (read back and hashed) and the link
// carries at most 0.3x the changed layers' compressed bytes, counted by
// the proxy.
func TestSyncDeltasOverLink(t *testing.T) {
	s := newSite(t, nil)
	link := viaLink(t, s)
	rootfs := int64(12 << 20)
	if raceOn {
		rootfs = 3 << 20
	}
	ups := []layergen.Update{layergen.GoService(t, true), layergen.Rootfs(t, rootfs), layergen.Assets(t, 60)}
	var oldL, newL []layergen.Layer
	for i, up := range ups {
		zstd := i%2 == 1
		oldL = append(oldL, layergen.Compress(t, up.Old, zstd))
		newL = append(newL, layergen.Compress(t, up.New, zstd))
	}
	const ref = "ghcr.io/org/app:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL...)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	imgs := map[string]artifact{ref: layeredImage(t, newL...)}
	pushBundle(t, s.up, s.bundles, rev2, imgs)
	sum := publishDeltas(t, s, rev2, []string{rev1}, imgs)
	if sum.Deltas != 3 || sum.ChangedLayers != 3 {
		t.Fatalf("deltas published: %+v", sum)
	}
	before := link.Down()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	if rep := s.check(rev2); !rep.Complete() {
		t.Fatalf("not complete: %v", rep.Missing)
	}
	for _, l := range newL {
		edgeBlobVerified(t, s, ref, l.Desc)
	}
	st := s.sync.DeltaStats()
	if st.Applied != 3 || st.Fallbacks != 0 {
		t.Fatalf("delta stats: %+v", st)
	}
	moved := link.Down() - before
	ratio := float64(moved) / float64(sum.ChangedBytes)
	t.Logf("changed layers %d bytes; the link carried %d bytes (%.3fx); patches %d bytes", sum.ChangedBytes, moved, ratio, st.PatchBytes)
	if ratio > 0.3 {
		t.Fatalf("the link carried %.3fx the changed layers, want at most 0.3x", ratio)
	}
}

// A Go service built with Go's default flags (zlib-compressed DWARF
// sections), one line changed, gzip and zstd: bundle publishes format 2
// deltas (the sections expanded), the edge makes both layers exact and the
// link carries at most 0.3x their compressed bytes. (Both layers hold the
// same content, so their deltas share one patch blob, which crosses once.)
// The revision's status counts the layers made from deltas and the bytes
// they saved, and the "bundle complete" log reports the bytes that crossed
// the link, not the layers made on site.
func TestSyncDwarfDeltaOverLink(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go service twice")
	}
	logs := &lockedBuffer{}
	s := newSite(t, nil, func(o *syncer.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	link := viaLink(t, s)
	up := layergen.GoService(t, false)
	oldL := []layergen.Layer{layergen.Compress(t, up.Old, false), layergen.Compress(t, up.Old, true)}
	newL := []layergen.Layer{layergen.Compress(t, up.New, false), layergen.Compress(t, up.New, true)}
	const ref = "ghcr.io/org/service:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL...)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	imgs := map[string]artifact{ref: layeredImage(t, newL...)}
	pushBundle(t, s.up, s.bundles, rev2, imgs)
	sum := publishDeltas(t, s, rev2, []string{rev1}, imgs)
	if sum.Deltas != 2 || sum.Expanded != 2 {
		t.Fatalf("deltas published: %+v", sum)
	}
	before := link.Down()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	for _, l := range newL {
		edgeBlobVerified(t, s, ref, l.Desc)
	}
	st := s.sync.DeltaStats()
	if st.Applied != 2 || st.Fallbacks != 0 {
		t.Fatalf("delta stats: %+v", st)
	}
	moved := link.Down() - before
	ratio := float64(moved) / float64(sum.ChangedBytes)
	t.Logf("changed layers %d bytes; the link carried %d bytes (%.3fx); patches %d bytes", sum.ChangedBytes, moved, ratio, st.PatchBytes)
	if ratio > 0.3 {
		t.Fatalf("the link carried %.3fx the changed layers, want at most 0.3x", ratio)
	}
	rv := revState(s, rev2)
	if rv.DeltaLayers != 2 || rv.DeltaSavedBytes < sum.ChangedBytes-st.PatchBytes-8192 || rv.DeltaSavedBytes > sum.ChangedBytes-st.PatchBytes {
		t.Fatalf("revision status: %d layers from deltas, %d bytes saved (layers %d, patches %d)", rv.DeltaLayers, rv.DeltaSavedBytes, sum.ChangedBytes, st.PatchBytes)
	}
	// The log's bytesRead: the patch that crossed (once), not the layers.
	var read int64 = -1
	for _, l := range strings.Split(logs.String(), "\n") {
		var e struct {
			Msg       string `json:"msg"`
			Revision  string `json:"revision"`
			BytesRead int64  `json:"bytesRead"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "bundle complete" && e.Revision == rev2 {
			read = e.BytesRead
		}
	}
	t.Logf("bundle complete: bytesRead %d", read)
	if read <= 0 || read > moved || read < st.PatchBytes/2 {
		t.Fatalf("bundle complete logged bytesRead %d; the link carried %d, one patch %d", read, moved, st.PatchBytes/2)
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A delta whose patch is corrupt (it names a patch blob that makes
// nothing good) is refused on site; the whole layer comes instead, and
// the layer on the edge is exact.
func TestSyncCorruptDeltaFallsBack(t *testing.T) {
	s := newSite(t, nil)
	link := viaLink(t, s)
	up := layergen.Assets(t, 40)
	oldL, newL := layergen.Compress(t, up.Old, false), layergen.Compress(t, up.New, false)
	const ref = "ghcr.io/org/web:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, map[string]artifact{ref: layeredImage(t, newL)})

	// A delta as bundle makes it, with its patch's bytes damaged.
	d, patch, err := delta.Make(context.Background(), oldL.Desc, oldL.Blob, newL.Desc, newL.Blob, "ghcr.io/org/web")
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), patch...)
	bad[len(bad)-20] ^= 0xff
	h, n, _ := v1.SHA256(bytes.NewReader(bad))
	d.Patch = v1.Descriptor{MediaType: delta.MediaTypePatch, Digest: h, Size: n}
	raw, desc, err := delta.BuildManifest(d)
	if err != nil {
		t.Fatal(err)
	}
	pushDelta(t, s, rev2, raw, desc, bad)

	before := link.Down()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	edgeBlobVerified(t, s, ref, newL.Desc)
	st := s.sync.DeltaStats()
	if st.Applied != 0 || st.Fallbacks != 1 {
		t.Fatalf("delta stats: %+v", st)
	}
	if moved := link.Down() - before; moved < newL.Desc.Size {
		t.Fatalf("the link carried %d bytes, less than the whole layer (%d)", moved, newL.Desc.Size)
	}
}

// pushDelta pushes one delta manifest, its blobs and the delta index of
// rev to the upstream bundles repository.
func pushDelta(t testing.TB, s *site, rev string, raw []byte, desc v1.Descriptor, patch []byte) {
	t.Helper()
	repo, err := name.NewRepository(s.up.Repo(s.bundles), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		data []byte
		mt   types.MediaType
	}{{patch, delta.MediaTypePatch}, {[]byte("{}"), delta.MediaTypeEmpty}} {
		if err := remote.WriteLayer(repo, static.NewLayer(b.data, b.mt)); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Put(repo.Digest(desc.Digest.String()), rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
	idx, idesc, err := delta.BuildIndex(rev, []v1.Descriptor{desc})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Tag(delta.IndexTag(rev)), rawManifest{idx, idesc.MediaType}); err != nil {
		t.Fatal(err)
	}
}

// A patch cut by the link resumes like any blob: the link cuts every
// connection after 64 KB, the patch is about 300 KB, and the link carries
// about the patch once, not the whole layer.
func TestSyncDeltaResumesOverCuts(t *testing.T) {
	s := newSite(t, nil, func(o *syncer.Options) {
		o.EngineOptions = []transfer.Option{transfer.WithRetry(30, 10*time.Millisecond, 50*time.Millisecond)}
	})
	link := viaLink(t, s)
	files := []layergen.File{}
	for i := range 8 {
		data := make([]byte, 256<<10)
		rand.Read(data)
		files = append(files, layergen.File{Name: "srv/data/" + string(rune('a'+i)), Data: data})
	}
	noise := make([]byte, 300<<10)
	rand.Read(noise)
	oldL := layergen.Compress(t, layergen.Tar(files), false)
	newL := layergen.Compress(t, layergen.Tar(append(files, layergen.File{Name: "srv/data/new", Data: noise})), false)
	const ref = "ghcr.io/org/data:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	imgs := map[string]artifact{ref: layeredImage(t, newL)}
	pushBundle(t, s.up, s.bundles, rev2, imgs)
	sum := publishDeltas(t, s, rev2, []string{rev1}, imgs)
	if sum.Deltas != 1 {
		t.Fatalf("deltas published: %+v", sum)
	}
	link.CutEvery(64 << 10)
	before, cuts := link.Down(), link.Cuts()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	edgeBlobVerified(t, s, ref, newL.Desc)
	st := s.sync.DeltaStats()
	moved := link.Down() - before
	t.Logf("patch %d bytes, layer %d bytes; %d cuts; the link carried %d bytes", st.PatchBytes, newL.Desc.Size, link.Cuts()-cuts, moved)
	if st.Applied != 1 || link.Cuts() == cuts {
		t.Fatalf("delta stats %+v, cuts %d: want one delta applied across cuts", st, link.Cuts()-cuts)
	}
	if float64(moved) > 1.2*float64(st.PatchBytes)+64<<10 {
		t.Fatalf("the link carried %d bytes for a %d byte patch: the cut patch was not resumed", moved, st.PatchBytes)
	}
}

// A delta whose base this edge's compressor does not reproduce by the
// base's recorded recipe (another compressor version: simulated with a
// recipe of another level) is skipped before its patch crosses the link:
// the link carries the whole layer and not the patch.
func TestSyncCompressorSkewSkipsPatch(t *testing.T) {
	s := newSite(t, nil)
	link := viaLink(t, s)
	files := []layergen.File{}
	for i := range 4 {
		data := make([]byte, 256<<10)
		rand.Read(data)
		files = append(files, layergen.File{Name: "srv/data/" + string(rune('a'+i)), Data: data})
	}
	noise := make([]byte, 400<<10)
	rand.Read(noise)
	oldL := layergen.Compress(t, layergen.Tar(files), false)
	newL := layergen.Compress(t, layergen.Tar(append(files, layergen.File{Name: "srv/data/new", Data: noise})), false)
	const ref = "ghcr.io/org/data:1"
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{ref: layeredImage(t, oldL)})
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, map[string]artifact{ref: layeredImage(t, newL)})
	d, patch, err := delta.Make(context.Background(), oldL.Desc, oldL.Blob, newL.Desc, newL.Blob, "ghcr.io/org/data")
	if err != nil {
		t.Fatal(err)
	}
	r := *d.BaseRecipe
	r.Level = 9
	d.BaseRecipe = &r
	raw, desc, err := delta.BuildManifest(d)
	if err != nil {
		t.Fatal(err)
	}
	pushDelta(t, s, rev2, raw, desc, patch)

	before := link.Down()
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("second revision: %+v", res)
	}
	edgeBlobVerified(t, s, ref, newL.Desc)
	st := s.sync.DeltaStats()
	moved := link.Down() - before
	t.Logf("layer %d bytes, patch %d bytes; the link carried %d bytes", newL.Desc.Size, len(patch), moved)
	if st.Skew != 1 || st.Applied != 0 || st.Fallbacks != 0 {
		t.Fatalf("delta stats: %+v", st)
	}
	if moved >= newL.Desc.Size+int64(len(patch))/2 {
		t.Fatalf("the link carried %d bytes: the patch (%d) crossed as well as the layer (%d)", moved, len(patch), newL.Desc.Size)
	}
}

// pathRecorder is a reverse proxy in front of the upstream registry that
// records the path of every request.
// A request whose path ends in holdUntil's key waits (at most holdMax,
// 10 s when zero) for a request whose path ends in its value.
type pathRecorder struct {
	mu        sync.Mutex
	paths     []string
	arrived   chan struct{} // closed and replaced at each request
	holdUntil map[string]string
	holdMax   time.Duration
	timedOut  []string
}

func (p *pathRecorder) saw(suffix string) bool { return p.count(suffix) > 0 }

func (p *pathRecorder) count(suffix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.paths {
		if strings.HasSuffix(q, suffix) {
			n++
		}
	}
	return n
}

func (p *pathRecorder) record(path string) {
	p.mu.Lock()
	p.paths = append(p.paths, path)
	close(p.arrived)
	p.arrived = make(chan struct{})
	var until string
	for k, v := range p.holdUntil {
		if strings.HasSuffix(path, k) {
			until = v
		}
	}
	hold := cmp.Or(p.holdMax, 10*time.Second)
	p.mu.Unlock()
	if until == "" {
		return
	}
	deadline := time.After(hold)
	for {
		p.mu.Lock()
		ch := p.arrived
		p.mu.Unlock()
		if p.saw(until) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			p.mu.Lock()
			p.timedOut = append(p.timedOut, path)
			p.mu.Unlock()
			return
		}
	}
}

// viaRecorder points the site's bundles repository at a pathRecorder.
func viaRecorder(t *testing.T, s *site) *pathRecorder {
	t.Helper()
	u, err := url.Parse("http://" + s.up.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &pathRecorder{arrived: make(chan struct{}), holdUntil: map[string]string{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r.URL.Path)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	s.cfg.Repositories[0].Bundles = host + "/" + s.bundles
	s.cfg.UpstreamRegistries[host] = config.UpstreamRegistry{Insecure: true}
	return rec
}

// A site that holds nothing of a repository yet has no base for any
// delta: its first revision comes whole without a request for the delta
// index (nor a round trip waiting for it before the first blob), although
// upstream has one. Once a revision is on site, the next one reads its
// delta index and is made from deltas.
func TestDeltaIndexReadOnlyWithBasesOnSite(t *testing.T) {
	s := newSite(t, nil)
	rec := viaRecorder(t, s)
	up := layergen.Assets(t, 40)
	oldL := []layergen.Layer{layergen.Compress(t, up.Old, false)}
	newL := []layergen.Layer{layergen.Compress(t, up.New, true)}
	const ref = "ghcr.io/org/app:1"
	oldImgs := map[string]artifact{ref: layeredImage(t, oldL...)}
	newImgs := map[string]artifact{ref: layeredImage(t, newL...)}

	rev0 := s.commit(map[string]string{"a": "0"})
	pushBundle(t, s.up, s.bundles, rev0, oldImgs)
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, newImgs)
	if sum := publishDeltas(t, s, rev1, []string{rev0}, newImgs); sum.Deltas != 1 {
		t.Fatalf("deltas of %s published: %+v", rev1, sum)
	}
	// The tip first (the kept rev0 after it).
	if res := s.pass(); !res.Done() || res.Complete != 2 {
		t.Fatalf("first pass: %+v", res)
	}
	if rec.saw("/manifests/" + delta.IndexTag(rev1)) {
		t.Fatalf("a site holding nothing of the repository read the delta index of %s", rev1)
	}
	if st := s.sync.DeltaStats(); st.Applied != 0 {
		t.Fatalf("delta stats: %+v", st)
	}
	for _, l := range newL {
		edgeBlobVerified(t, s, ref, l.Desc)
	}

	// The same content compressed otherwise: deltas against rev1, which
	// is on site.
	nextL := []layergen.Layer{layergen.Compress(t, up.New, false)}
	nextImgs := map[string]artifact{ref: layeredImage(t, nextL...)}
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, nextImgs)
	if sum := publishDeltas(t, s, rev2, []string{rev1}, nextImgs); sum.Deltas != 1 {
		t.Fatalf("deltas of %s published: %+v", rev2, sum)
	}
	if res := s.pass(); !res.Done() {
		t.Fatalf("second revision: %+v", res)
	}
	if !rec.saw("/manifests/" + delta.IndexTag(rev2)) {
		t.Fatalf("the delta index of %s was not read with %s on site", rev2, rev1)
	}
	if st := s.sync.DeltaStats(); st.Applied != 1 || st.Fallbacks != 0 {
		t.Fatalf("delta stats: %+v", st)
	}
	for _, l := range nextL {
		edgeBlobVerified(t, s, ref, l.Desc)
	}
}

// The delta index of a revision is read beside its bundle index, not a
// round trip after it: upstream holds the bundle index back until the
// delta index has been asked for. A revision upstream has no bundle for
// is looked up with its delta index once, then polled with one request
// per pass until its bundle arrives (its delta index read then when the
// first blob needs it).
func TestDeltaIndexReadBesideBundleIndex(t *testing.T) {
	s := newSite(t, nil)
	rec := viaRecorder(t, s)
	up := layergen.Assets(t, 40)
	const ref = "ghcr.io/org/app:1"
	image := func(zstd bool) map[string]artifact {
		return map[string]artifact{ref: layeredImage(t, layergen.Compress(t, up.New, zstd))}
	}
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, image(true))
	if res := s.pass(); !res.Done() {
		t.Fatalf("first revision: %+v", res)
	}

	// CI has not pushed rev2's bundle yet: two passes find none.
	rev2 := s.commit(map[string]string{"a": "2"})
	for range 2 {
		if res := s.pass(); res.NoBundle != 1 {
			t.Fatalf("pass without rev2's bundle: %+v", res)
		}
	}
	if n, d := rec.count("/manifests/"+rev2), rec.count("/manifests/"+delta.IndexTag(rev2)); n != 2 || d != 1 {
		t.Fatalf("two passes without a bundle asked %d times for the bundle index and %d times for the delta index; want 2 and 1", n, d)
	}
	pushBundle(t, s.up, s.bundles, rev2, image(false))
	publishDeltas(t, s, rev2, []string{rev1}, image(false))
	if res := s.pass(); !res.Done() {
		t.Fatalf("rev2: %+v", res)
	}
	if st := s.sync.DeltaStats(); st.Applied != 1 {
		t.Fatalf("rev2 not made from its delta: %+v", st)
	}

	// rev3 and its bundle arrive together (as after a long outage): the
	// bundle index is held until the delta index is asked for.
	rev3 := s.commit(map[string]string{"a": "3"})
	other := layergen.Assets(t, 40)
	imgs := map[string]artifact{ref: layeredImage(t, layergen.Compress(t, other.New, false))}
	pushBundle(t, s.up, s.bundles, rev3, imgs)
	rec.mu.Lock()
	rec.holdUntil["/manifests/"+rev3] = "/manifests/" + delta.IndexTag(rev3)
	rec.mu.Unlock()
	if res := s.pass(); !res.Done() {
		t.Fatalf("rev3: %+v", res)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.timedOut) > 0 {
		t.Fatalf("the bundle index of rev3 waited 10 s and no request for its delta index came: %v", rec.timedOut)
	}
}
