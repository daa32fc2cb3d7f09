package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	ocilayout "github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// DeltaStats counts what sub-layer deltas did since the syncer started.
type DeltaStats struct {
	Applied     int64 `json:"applied"`     // layers made from a delta, digest verified
	PatchBytes  int64 `json:"patchBytes"`  // patch bytes of those deltas
	LayerBytes  int64 `json:"layerBytes"`  // compressed bytes of the layers they made
	Fallbacks   int64 `json:"fallbacks"`   // deltas refused (bad patch, base, digest): the whole blob came
	NoBase      int64 `json:"noBase"`      // layers with deltas whose bases are not on site
	Skew        int64 `json:"skew"`        // deltas skipped before their patch crossed: this build's compressor does not reproduce the base
	IndexErrors int64 `json:"indexErrors"` // delta indexes that did not parse
}

type deltaCounters struct {
	applied, patchBytes, layerBytes, fallbacks, noBase, skew, indexErrors atomic.Int64
}

// DeltaStats returns what deltas did so far.
func (s *Syncer) DeltaStats() DeltaStats {
	c := &s.deltaStats
	return DeltaStats{Applied: c.applied.Load(), PatchBytes: c.patchBytes.Load(), LayerBytes: c.layerBytes.Load(),
		Fallbacks: c.fallbacks.Load(), NoBase: c.noBase.Load(), Skew: c.skew.Load(), IndexErrors: c.indexErrors.Load()}
}

// withDeltas returns the source to land revision sha of repository id's
// bundle from: up,
// with every blob that has a delta made on site instead (deltaSource).
// The delta index (delta.IndexTag) is read when the first blob must
// cross the link, or earlier, beside the bundle index, when the caller
// starts it (deltaSource.prefetch); absent or bad, the bundle comes
// whole. A site that holds
// nothing of the repository yet (its edge bundle repository bundleRepo is
// empty: no earlier revision, whole or in part, whose blobs a delta could
// start from) reads no delta index: its first bundle costs no request and
// no round trip for deltas it could not use. The returned func removes
// what was made on site.
func (s *Syncer) withDeltas(ctx context.Context, up transfer.Source, id, sha, bundleRepo string) (transfer.Source, func()) {
	if s.o.DisableDeltas || !s.mayHoldDeltaBases(ctx, bundleRepo) {
		return up, func() {}
	}
	ds := &deltaSource{Source: up, s: s, id: id, sha: sha, failed: map[v1.Hash]bool{}, made: map[v1.Hash]string{}}
	return ds, func() {
		if ds.stop != nil {
			ds.stop()
			<-ds.prefetched
		}
		ds.mu.Lock()
		defer ds.mu.Unlock()
		if ds.work != "" {
			os.RemoveAll(ds.work)
		}
	}
}

// ContentHolder is implemented by an edge registry that says whether a
// repository holds anything (*registry.Registry does).
type ContentHolder interface {
	HoldsContent(ctx context.Context, repo string) (bool, error)
}

// mayHoldDeltaBases reports whether the edge may hold a base of a delta of
// the repository whose edge bundle repository is bundleRepo: every blob of
// every revision landed (synced or imported, whole or in part) is linked
// into it. An edge registry that cannot say, or fails to, may.
func (s *Syncer) mayHoldDeltaBases(ctx context.Context, bundleRepo string) bool {
	h, ok := s.o.Local.(ContentHolder)
	if !ok {
		return true
	}
	held, err := h.HoldsContent(ctx, bundleRepo)
	if err != nil {
		s.log.Debug("delta bases: cannot tell what the site holds; reading the delta index", "repo", bundleRepo, "err", err)
		return true
	}
	return held
}

// prefetch starts reading the delta index now, in the background; a blob
// that needs it waits for that read. The cleanup of withDeltas stops it.
func (d *deltaSource) prefetch(ctx context.Context) {
	ctx, d.stop = context.WithCancel(ctx)
	d.prefetched = make(chan struct{})
	go func() {
		defer close(d.prefetched)
		_ = d.load(ctx) // a failure is load's to log; a cancelled read is read again
	}()
}

// load reads the delta index once; a failure other than a cancelled
// context leaves the bundle whole.
func (d *deltaSource) load(ctx context.Context) error {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	if d.loaded {
		return nil
	}
	_, raw, err := d.s.engine.ResolveManifest(ctx, d.Source, delta.IndexTag(d.sha))
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	d.loaded = true
	if err != nil {
		if !errors.Is(err, transfer.ErrNotFound) {
			d.s.log.Debug("delta index", "revision", d.sha, "err", err)
		}
		return nil
	}
	entries, err := delta.ParseIndex(raw, d.sha)
	if err != nil {
		d.s.deltaStats.indexErrors.Add(1)
		d.s.log.Warn("delta index refused: the bundle comes whole", "revision", d.sha, "err", err)
		return nil
	}
	byTarget := map[v1.Hash][]delta.Entry{}
	for _, e := range entries {
		byTarget[e.Delta.Target.Digest] = append(byTarget[e.Delta.Target.Digest], e)
	}
	for _, es := range byTarget {
		sort.Slice(es, func(i, j int) bool { return es[i].Delta.Patch.Size < es[j].Delta.Patch.Size })
	}
	work, err := os.MkdirTemp(d.s.deltaDir, "made-")
	if err != nil {
		d.s.log.Warn("delta work dir", "err", err)
		return nil
	}
	d.mu.Lock()
	d.byTarget, d.work = byTarget, work
	d.mu.Unlock()
	return nil
}

// deltaSource is an upstream source whose blobs with a delta are made on
// site: the patch is fetched (a blob like any other, staged and resumable,
// through the link), applied to the base the edge holds after checking
// it, recompressed by the recipe and checked against the blob's digest;
// only then is the blob handed to the copy engine, which checks it again
// as it writes. Any failure but a link failure falls back to the whole
// blob from upstream.
type deltaSource struct {
	transfer.Source
	s       *Syncer
	id, sha string

	// Link accounting: blob bytes served from layers made on site (the
	// copy engine counts them as read) and patch bytes read over the
	// link (by the delta engine, which the copy engine does not count).
	madeRead, patchRead atomic.Int64

	loadMu sync.Mutex // held while the index is read
	loaded bool
	// stop cancels a prefetch; prefetched is closed when it has ended.
	stop       context.CancelFunc
	prefetched chan struct{}

	mu       sync.Mutex
	byTarget map[v1.Hash][]delta.Entry
	work     string
	failed   map[v1.Hash]bool
	made     map[v1.Hash]string // target digest → verified blob file
}

// Location keeps the upstream's location visible to the engine.
func (d *deltaSource) Location() oci.Location {
	if l, ok := d.Source.(transfer.Located); ok {
		return l.Location()
	}
	return oci.Location{}
}

// FetchRef passes the upstream's one-round-trip read through.
func (d *deltaSource) FetchRef(ctx context.Context, ref string) (v1.Descriptor, []byte, error) {
	if rf, ok := d.Source.(transfer.RefFetcher); ok {
		return rf.FetchRef(ctx, ref)
	}
	desc, err := d.Source.Resolve(ctx, ref)
	if err != nil {
		return desc, nil, err
	}
	raw, err := d.Source.FetchManifest(ctx, desc)
	return desc, raw, err
}

// OpenBlob serves blob b made from a delta when one applies, else from
// upstream.
func (d *deltaSource) OpenBlob(ctx context.Context, b v1.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := d.load(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	es, failed, path := d.byTarget[b.Digest], d.failed[b.Digest], d.made[b.Digest]
	d.mu.Unlock()
	if len(es) == 0 || failed || !sizeMatches(es, b) {
		// A descriptor whose size no delta targets (a blob hint that
		// lies, bundle.AnnotationBlobs) is served whole but does not
		// mark the layer failed: the manifest's descriptor still gets
		// its delta.
		return d.Source.OpenBlob(ctx, b, offset)
	}
	if path == "" {
		var err error
		path, err = d.make(ctx, b, es)
		if err != nil {
			if ctx.Err() != nil || !oci.IsPermanent(err) {
				return nil, err // the link: retry, the staged patch resumes
			}
			d.mu.Lock()
			d.failed[b.Digest] = true
			d.mu.Unlock()
			return d.Source.OpenBlob(ctx, b, offset)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &countedFile{File: f, n: &d.madeRead}, nil
}

// sizeMatches reports whether some entry's target has b's size.
func sizeMatches(es []delta.Entry, b v1.Descriptor) bool {
	for _, e := range es {
		if e.Delta.Target.Size == b.Size {
			return true
		}
	}
	return false
}

// countedFile counts the bytes read from it into n.
type countedFile struct {
	*os.File
	n *atomic.Int64
}

func (c *countedFile) Read(p []byte) (int, error) {
	k, err := c.File.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// linkBytes is what landing from src read over the link, given the copy
// engine's stats: blob bytes read, less those of layers made on site
// from deltas, plus the patch bytes those took.
func linkBytes(src transfer.Source, st transfer.Stats) int64 {
	if d, ok := src.(*deltaSource); ok {
		return st.BytesRead - d.madeRead.Load() + d.patchRead.Load()
	}
	return st.BytesRead
}

// maxDeltaBases bounds the bases read and checked for one layer.
const maxDeltaBases = 3

// make makes blob b from the first delta (smallest patch first) whose base
// is on site; a permanent error means none could (take the whole blob).
func (d *deltaSource) make(ctx context.Context, b v1.Descriptor, es []delta.Entry) (string, error) {
	// One at a time: each holds a base's content in memory.
	select {
	case d.s.deltaSem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-d.s.deltaSem }()
	log := d.s.log.With("layer", b.Digest.String())
	tried, bases := false, 0
	for _, e := range es {
		// By size: a delta only where it saves at least 1 % of the
		// whole blob (bundle publishes no other; the index is not
		// trusted for it).
		if e.Delta.Target.Size != b.Size || float64(e.Delta.Patch.Size+e.Manifest.Size) > 0.99*float64(b.Size) {
			continue
		}
		// Each base checked costs a decompression (and a recompression)
		// of up to delta.MaxContent bytes: a few per layer, not every
		// entry a hostile index lists.
		if bases == maxDeltaBases {
			break
		}
		base, err := d.openBase(ctx, e.Delta)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			log.Debug("delta base not on site", "base", e.Delta.Base.Digest.String(), "err", err)
			continue
		}
		// The base first, checked; then whether this build's compressor
		// still makes it by its recipe: if not, the target could not be
		// made exact either, and the patch never crosses the link.
		bases++
		content, err := delta.LoadBase(ctx, e.Delta.Base, base)
		base.Close()
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			log.Warn("delta base on site does not check out", "base", e.Delta.Base.Digest.String(), "err", err)
			continue
		}
		if err := delta.ProbeBase(ctx, e.Delta, content); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			tried = true
			d.s.deltaStats.skew.Add(1)
			log.Warn("delta skipped before its patch crossed the link", "base", e.Delta.Base.Digest.String(), "err", err)
			continue
		}
		tried = true
		path, err := d.apply(ctx, b, e, content)
		if err == nil {
			d.s.deltaStats.applied.Add(1)
			d.s.deltaStats.patchBytes.Add(e.Delta.Patch.Size)
			d.s.deltaStats.layerBytes.Add(b.Size)
			log.Info("layer made from a delta", "base", e.Delta.Base.Digest.String(), "patchBytes", e.Delta.Patch.Size, "layerBytes", b.Size)
			d.s.status.update(d.id, d.sha, func(r *RevisionStatus) {
				r.DeltaLayers++
				r.DeltaSavedBytes += b.Size - e.Delta.Patch.Size - e.Manifest.Size
			})
			d.mu.Lock()
			d.made[b.Digest] = path
			d.mu.Unlock()
			return path, nil
		}
		if ctx.Err() != nil || !oci.IsPermanent(err) {
			return "", err
		}
		d.s.deltaStats.fallbacks.Add(1)
		log.Warn("delta refused: the whole layer comes instead", "base", e.Delta.Base.Digest.String(), "err", err)
		// A patch crossed the link and made nothing good: the next
		// entry's would cost the link as much again (an index may list
		// thousands for one layer). The whole layer comes.
		break
	}
	if !tried {
		d.s.deltaStats.noBase.Add(1)
	}
	return "", oci.Permanent(fmt.Errorf("layer %s: no delta applies", b.Digest))
}

// openBase opens the delta's base layer in the edge registry (linked into
// the base image's repository if the registry holds it elsewhere).
func (d *deltaSource) openBase(ctx context.Context, dl *delta.Delta) (io.ReadCloser, error) {
	ref, err := imageref.Parse(dl.BaseImage)
	if err != nil {
		return nil, err
	}
	r, err := d.s.local(ref.EdgeRepository())
	if err != nil {
		return nil, err
	}
	bd := dl.Base.Descriptor()
	if ok, err := r.BlobExists(ctx, bd); err != nil {
		return nil, err
	} else if !ok {
		if linked, err := r.LinkBlob(ctx, bd); err != nil || !linked {
			return nil, fmt.Errorf("base %s: %w", bd.Digest, transfer.ErrNotFound)
		}
	}
	return r.OpenBlob(ctx, bd, 0)
}

// apply fetches e's patch (resumable), makes the blob from the base's
// checked content into a file under the work dir and checks it. Errors that are not the link's are
// permanent.
func (d *deltaSource) apply(ctx context.Context, b v1.Descriptor, e delta.Entry, content []byte) (string, error) {
	lay, err := ocilayout.New(d.s.deltaLayout)
	if err != nil {
		return "", oci.Permanent(err)
	}
	// The delta manifest and its patch, like any image: staged, resumed,
	// verified, over the link (the upstream source is metered).
	st, err := d.s.deltaEngine.Copy(ctx, transfer.Job{Src: d.Source, Dst: lay, Root: e.Manifest})
	d.patchRead.Add(st.BytesRead)
	if err != nil {
		if errors.Is(err, transfer.ErrNotFound) || errors.Is(err, transfer.ErrDigestMismatch) {
			return "", oci.Permanent(err)
		}
		return "", err
	}
	raw, err := lay.FetchManifest(ctx, e.Manifest)
	if err != nil {
		return "", oci.Permanent(err)
	}
	dl, err := delta.ParseManifest(raw)
	if err != nil {
		return "", oci.Permanent(err)
	}
	if dl.Target != e.Delta.Target || dl.Base != e.Delta.Base || dl.Patch.Size != e.Delta.Patch.Size || dl.Version != e.Delta.Version || dl.Target.Digest != b.Digest {
		return "", oci.Permanent(errors.New("delta manifest does not match its index entry"))
	}
	patch, err := lay.OpenBlob(ctx, dl.Patch, 0)
	if err != nil {
		return "", oci.Permanent(err)
	}
	defer patch.Close()
	f, err := os.CreateTemp(d.work, "blob-")
	if err != nil {
		return "", oci.Permanent(err)
	}
	err = delta.Reconstruct(ctx, dl, content, oci.VerifyReader(patch, dl.Patch), f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", oci.Permanent(err)
	}
	path := filepath.Join(d.work, b.Digest.Hex)
	if err := os.Rename(f.Name(), path); err != nil {
		return "", oci.Permanent(err)
	}
	return path, nil
}
