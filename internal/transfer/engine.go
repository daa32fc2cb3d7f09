package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
)

// Job is one root (a manifest or index, e.g. an image or a bundle index) to
// copy from Src to Dst with everything it reaches for Platforms.
type Job struct {
	Src  Source
	Dst  Target
	Root v1.Descriptor
	// Tags are set on Root in Dst after everything below it is written.
	Tags []string
	// Platforms selects the children of indexes; empty keeps all.
	Platforms oci.Platforms
	// RootOnly copies only the root manifest; the caller has placed what
	// it references (e.g. a bundle index whose images live elsewhere).
	RootOnly bool
	// Recheck walks the root and checks every child even when the root is
	// already in the target (WithTrustExistingRoots aside): for a target
	// known to have lost content below a present root, such as a blob
	// deleted or found damaged on disk.
	Recheck bool
	// Hints are blobs the root is said to reach (a bundle index's
	// bundle.AnnotationBlobs), fetched by digest as soon as the job starts,
	// while its manifests are still on their way: on a long link that
	// saves the manifests' round trip. A hint is never trusted: its bytes
	// are verified against its digest and go to the staging directory
	// only, until the walk of some job of the same Copy reaches the blob;
	// from then on the fetch goes on into that job's target as if there
	// had been no hint (the staged bytes first, then the rest of the same
	// download). One that no walk reaches is dropped from staging and
	// counted in Stats.HintsUnused. A failed hint fetch is not the copy's
	// failure: the walk's copy resumes it. Ignored without a staging
	// directory (WithStagingDir), in dry runs, for a root skipped as
	// present, and for blobs Dst holds.
	Hints []v1.Descriptor
}

// Stats counts what a Copy did.
type Stats struct {
	BytesRead        int64 `json:"bytesRead"`        // blob bytes read from sources (the link)
	BytesWritten     int64 `json:"bytesWritten"`     // blob bytes written to targets
	BytesSkipped     int64 `json:"bytesSkipped"`     // blob bytes already present or mounted
	BlobsCopied      int   `json:"blobsCopied"`      // blobs whose bytes were written
	BlobsSkipped     int   `json:"blobsSkipped"`     // blobs already present
	BlobsMounted     int   `json:"blobsMounted"`     // blobs linked by cross-repository mount
	ManifestsWritten int   `json:"manifestsWritten"` // manifests and indexes written (incl. tags)
	ManifestsSkipped int   `json:"manifestsSkipped"` // manifests already present
	Retries          int   `json:"retries"`
	// HintsFetched counts hinted blobs whose download started before a
	// walk reached them (Job.Hints); HintsUnused those no walk reached,
	// whose HintBytesUnused bytes were read for nothing (and dropped).
	HintsFetched    int   `json:"hintsFetched,omitempty"`
	HintsUnused     int   `json:"hintsUnused,omitempty"`
	HintBytesUnused int64 `json:"hintBytesUnused,omitempty"`
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	BlobProgress EventKind = iota // bytes of a blob arrived
	BlobDone                      // a blob was written
	BlobSkipped                   // a blob was present or mounted
	ManifestDone                  // a manifest was written or present
	Retrying                      // an attempt failed and will be retried
)

func (k EventKind) String() string {
	return [...]string{"blob-progress", "blob-done", "blob-skipped", "manifest-done", "retrying"}[k]
}

// Event is a progress report. For blob events, Done/Total count blob bytes
// of the whole Copy (skipped blobs and bytes of blobs in flight included),
// so Done reaches Total on success; ManifestDone and Retrying events leave
// them zero.
type Event struct {
	Kind   EventKind
	Digest v1.Hash
	Size   int64 // of this blob
	Offset int64 // bytes of this blob received
	Done   int64 // all blobs
	Total  int64
	Err    error // for Retrying
}

// walkConcurrency is how many jobs' manifests are fetched at once (at
// least): a manifest is a round trip, and on a long link blobs wait for
// them.
const walkConcurrency = 16

// Engine copies content. It is safe for concurrent use; each Copy has its
// own stats.
type Engine struct {
	o options

	// placed remembers where this engine wrote or found each blob, so a
	// later Copy to another repository of the same registry mounts it.
	mu     sync.Mutex
	placed map[v1.Hash][]oci.Location
}

type options struct {
	concurrency int
	limiter     *rate.Limiter
	progress    func(Event)
	staging     string
	retry       retryPolicy
	log         *slog.Logger
	trustRoots  bool
}

// Option configures an Engine.
type Option func(*options) error

// WithConcurrency bounds how many blobs move at once. The default value is 4.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("concurrency %d: want at least 1", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithBandwidth caps the bytes per second read from sources, over all
// blobs. The default value, 0, is unlimited.
func WithBandwidth(bytesPerSecond int64) Option {
	return func(o *options) error {
		if bytesPerSecond < 0 {
			return fmt.Errorf("bandwidth %d: negative", bytesPerSecond)
		}
		if bytesPerSecond > 0 {
			burst := int(min(bytesPerSecond, 256<<10))
			o.limiter = rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
		}
		return nil
	}
}

// WithProgress receives progress events. It is called from the copying
// goroutines and must not block. The default is none.
func WithProgress(f func(Event)) Option {
	return func(o *options) error { o.progress = f; return nil }
}

// WithStagingDir keeps partial blobs in dir so an interrupted download
// resumes where it stopped, across retries and restarts. Without it (the
// default) a retry starts the blob again from byte 0.
func WithStagingDir(dir string) Option {
	return func(o *options) error { o.staging = dir; return nil }
}

// WithRetry sets the retry budget: attempts without progress before giving
// up (default 6), and the backoff range (default 250ms to 15s).
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(o *options) error {
		if attempts < 1 || base <= 0 || max < base {
			return fmt.Errorf("retry: attempts %d, backoff %v..%v: invalid", attempts, base, max)
		}
		o.retry = retryPolicy{Attempts: attempts, Base: base, Max: max, Flat: o.retry.Flat}
		return nil
	}
}

// WithFastRetries makes n more failures in a row wait the base backoff
// (the first one always does) before the backoff starts to double; the
// budget of WithRetry still counts them. A link that is down for a few seconds
// (a satellite handover, a short outage) is retried within about the
// base backoff of its return instead of after a doubled wait. The
// default value is 0.
func WithFastRetries(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("fast retries %d: negative", n)
		}
		o.retry.Flat = n
		return nil
	}
}

// WithLogger logs retries and skips at debug/warn level. The default
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithTrustExistingRoots skips a job whose root (and tags) are already in
// the target, without walking it: roots are written last, so a present root
// means everything below it was written. The default value is true; false
// walks and checks every child.
func WithTrustExistingRoots(b bool) Option {
	return func(o *options) error { o.trustRoots = b; return nil }
}

// New returns an Engine.
func New(opts ...Option) (*Engine, error) {
	o := options{
		concurrency: 4,
		retry:       retryPolicy{Attempts: 6, Base: 250 * time.Millisecond, Max: 15 * time.Second},
		log:         slog.New(slog.DiscardHandler),
		trustRoots:  true,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Engine{o: o, placed: map[v1.Hash][]oci.Location{}}, nil
}

// Resolve resolves a tag or digest at src through the retry layer.
func (e *Engine) Resolve(ctx context.Context, src Source, ref string) (v1.Descriptor, error) {
	var d v1.Descriptor
	err := e.retryDo(ctx, "resolve "+ref, nil, func(ctx context.Context) (bool, error) {
		var err error
		d, err = src.Resolve(ctx, ref)
		return false, err
	})
	return d, err
}

// ResolveManifest resolves a tag or digest at src and fetches that manifest,
// through the retry layer: one request where src is a RefFetcher (a
// registry), else Resolve then FetchManifest. The bytes are checked against
// the returned descriptor; absent content wraps ErrNotFound.
func (e *Engine) ResolveManifest(ctx context.Context, src Source, ref string) (v1.Descriptor, []byte, error) {
	rf, ok := src.(RefFetcher)
	if !ok {
		d, err := e.Resolve(ctx, src, ref)
		if err != nil {
			return d, nil, err
		}
		raw, err := e.fetchManifest(ctx, src, d)
		return d, raw, err
	}
	var d v1.Descriptor
	var raw []byte
	mismatches := 0
	err := e.retryDo(ctx, "fetch manifest "+ref, nil, func(ctx context.Context) (bool, error) {
		var err error
		d, raw, err = rf.FetchRef(ctx, ref)
		if err == nil {
			err = oci.VerifyBytes(raw, d)
		}
		if errors.Is(err, ErrDigestMismatch) {
			if mismatches++; mismatches >= 2 {
				return false, Permanent(err)
			}
		}
		return false, err
	})
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	return d, raw, nil
}

// FetchManifest fetches manifest d from src through the retry layer and
// checks its digest and size.
func (e *Engine) FetchManifest(ctx context.Context, src Source, d v1.Descriptor) ([]byte, error) {
	return e.fetchManifest(ctx, src, d)
}

// Plan is what a Copy would do, found by walking the sources and asking the
// targets (a dry run).
type Plan struct {
	Jobs         []JobPlan
	Blobs        int   // distinct (target, blob) pairs
	Bytes        int64 // their bytes
	MissingBlobs int
	MissingBytes int64
}

// JobPlan is the plan of one job.
type JobPlan struct {
	Root      v1.Descriptor
	Present   bool  // root and tags already in the target
	Manifests int   // manifests and indexes reached, root included
	Bytes     int64 // blob bytes reached
	Missing   int64 // blob bytes the target lacks
}

// blobTask is one blob and the targets that need it. Targets found while
// it runs are appended until it has served the last one (closed); a
// target found after that gets a new task, which waits for this one
// (prev) to finish with the staging directory.
type blobTask struct {
	d    v1.Descriptor
	src  Source
	prev *blobTask
	done chan struct{}

	// hint marks a task started by a hint (Job.Hints) before any walk
	// reached its blob: it fetches into staging until the first target
	// is added (claimed closes), then serves its targets as any task.
	hint    bool
	hintDst Target        // the hinting job's target: a blob there is not fetched
	claimed chan struct{} // closed when the first target is added
	// rejected is closed when a walk reached the blob with another size
	// than the hint's (a hint that lies): the task stops, drops what it
	// staged, and a new task for the walk's descriptor follows it.
	rejected chan struct{}
	// pending is the hint's download, paused at the stage's offset when
	// the blob was claimed: the first attempt goes on reading it.
	pending io.ReadCloser
	staged  *stage // an unclaimed hint's stage, for dropUnused

	mu     sync.Mutex
	dsts   []Target
	next   int
	closed bool
}

// nextDst returns the next target to serve, or nil, closing the task.
func (bt *blobTask) nextDst() Target {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.next < len(bt.dsts) {
		bt.next++
		return bt.dsts[bt.next-1]
	}
	bt.closed = true
	return nil
}

// takeStage returns (once) the stage an unclaimed hint task left.
func (bt *blobTask) takeStage() *stage {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	stg := bt.staged
	bt.staged = nil
	return stg
}

// isClaimed reports whether a hint task has a target.
func (bt *blobTask) isClaimed() bool {
	select {
	case <-bt.claimed:
		return true
	default:
		return false
	}
}

// isRejected reports whether a walk refused a hint task's descriptor.
func (bt *blobTask) isRejected() bool {
	if bt.rejected == nil {
		return false
	}
	select {
	case <-bt.rejected:
		return true
	default:
		return false
	}
}

// reject closes an unclaimed hint task whose descriptor a walk refused:
// no target is added to it afterwards.
func (bt *blobTask) reject() {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closed || len(bt.dsts) > 0 {
		return
	}
	bt.closed = true
	close(bt.rejected)
}

// takePending returns (once) a claimed hint's paused download, which
// goes on at the stage's offset. Only the task's own goroutine uses it.
func (bt *blobTask) takePending() io.ReadCloser {
	p := bt.pending
	bt.pending = nil
	return p
}

// addDst adds a target unless the task is closed.
func (bt *blobTask) addDst(t Target) bool {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closed {
		return false
	}
	bt.dsts = append(bt.dsts, t)
	if bt.hint && len(bt.dsts) == 1 {
		close(bt.claimed)
	}
	return true
}

// blobSched starts each blob's copy as soon as a walk finds it, while
// other manifests are still arriving: on a long link a blob need not
// wait for every manifest. At most the engine's concurrency of blobs
// move at once; each distinct (target, blob) pair is served once and
// each blob is fetched once for all the targets that need it.
type blobSched struct {
	e    *Engine
	st   *statsCounter
	g    *errgroup.Group
	ctx  context.Context
	sem  chan struct{}
	mu   sync.Mutex
	ids  map[Target]int
	seen map[schedKey]bool
	open map[v1.Hash]*blobTask
	// hints are the hint tasks started; reached the blobs some walk
	// reached; walkDone is closed when the walks have ended (no target
	// is added after it).
	hints    []*blobTask
	reached  map[v1.Hash]bool
	walkDone chan struct{}

	// cancel stops every other blob and the walks at the first failure,
	// before that blob's slot is given back: with the slot free and the
	// context not yet cancelled, a queued blob would otherwise start a
	// fetch that only the failure's cancellation cuts (bytes for nothing
	// on a metered link). err is that first failure, the copy's cause.
	cancel  context.CancelFunc
	errOnce sync.Once
	err     error
}

// fail records err as the copy's cause (the first one wins) and cancels
// the rest.
func (s *blobSched) fail(err error) error {
	s.errOnce.Do(func() {
		s.err = err
		s.cancel()
	})
	return err
}

// wait waits for every blob; the error is the first blob failure, not the
// cancellations it caused.
func (s *blobSched) wait() error {
	err := s.g.Wait()
	if err != nil && s.err != nil {
		return s.err
	}
	return err
}

type schedKey struct {
	dst int
	d   v1.Hash
}

// add schedules blob d of job i (index i, job j).
func (s *blobSched) add(i int, j Job, d v1.Descriptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Targets are told apart by identity where they are comparable (a
	// *Remote, a *Layout); others count as distinct per job.
	id := -1 - i
	if reflect.TypeOf(j.Dst).Comparable() {
		var ok bool
		if id, ok = s.ids[j.Dst]; !ok {
			id = len(s.ids)
			s.ids[j.Dst] = id
		}
	}
	k := schedKey{id, d.Digest}
	first := !s.reached[d.Digest]
	s.reached[d.Digest] = true
	if s.seen[k] {
		return
	}
	s.seen[k] = true
	if first {
		s.st.total.Add(d.Size)
	}
	prev := s.open[d.Digest]
	if prev != nil && prev.hint && prev.d.Size != d.Size {
		// The hint lied about the size: its task must not serve a
		// target (it would write the blob under the hint's size).
		prev.reject()
	}
	if prev != nil && prev.addDst(j.Dst) {
		return
	}
	bt := &blobTask{d: d, src: j.Src, dsts: []Target{j.Dst}, prev: prev, done: make(chan struct{})}
	s.open[d.Digest] = bt
	s.start(bt)
}

// hint starts fetching blob d, hinted by job j, into staging, unless a
// task for it exists (a walk reached it first, or another job hinted it).
func (s *blobSched) hint(j Job, d v1.Descriptor) {
	if s.e.o.staging == "" || oci.CheckDigest(d.Digest) != nil || d.Size <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[d.Digest] != nil {
		return
	}
	bt := &blobTask{d: d, src: j.Src, hint: true, hintDst: j.Dst, claimed: make(chan struct{}), rejected: make(chan struct{}), done: make(chan struct{})}
	s.open[d.Digest] = bt
	s.hints = append(s.hints, bt)
	s.start(bt)
}

// prefetch runs a hint task until a walk claims its blob: it fetches
// the blob into its stage (from where an earlier run left it), pausing
// the download when the blob is claimed, and then waits for the claim.
// It returns the stage for the task's targets and true once claimed;
// false when no walk claimed the blob (the stage is left for dropUnused)
// or the copy was cancelled.
func (s *blobSched) prefetch(bt *blobTask) (*stage, bool) {
	e, ctx := s.e, s.ctx
	var stg *stage
	var present bool
	err := e.retryDo(ctx, "check blob "+bt.d.Digest.String(), nil, func(ctx context.Context) (bool, error) {
		var err error
		present, err = bt.hintDst.BlobExists(ctx, bt.d)
		return false, err
	})
	if err == nil && !present {
		stg, err = openStage(e.o.staging, bt.d)
	}
	if err == nil && stg != nil && !bt.isClaimed() && !bt.isRejected() {
		var started bool
		started, err = e.prefetchBlob(ctx, bt, stg, s.st)
		if started {
			s.st.add(func(st *Stats) { st.HintsFetched++ })
		}
	}
	if err != nil && ctx.Err() == nil {
		// Not the copy's failure: a claimed blob's copy resumes it.
		e.o.log.Debug("hinted blob not prefetched", "digest", bt.d.Digest.String(), "err", err)
	}
	select {
	case <-bt.claimed:
	case <-bt.rejected:
	case <-s.walkDone:
	case <-ctx.Done():
	}
	if bt.isClaimed() && ctx.Err() == nil {
		return stg, true
	}
	if bt.isRejected() {
		// The walk's task (chained after this one) fetches the blob
		// under its own descriptor; what the hint staged is dropped.
		if bt.pending != nil {
			bt.pending.Close()
			bt.pending = nil
		}
		if stg != nil {
			stg.remove()
		}
		s.st.setInflight(bt.d.Digest, -1)
		return nil, false
	}
	// Unclaimed (the walks are over) or cancelled: no target; close the
	// task so that nothing is added to it.
	bt.mu.Lock()
	bt.closed = true
	bt.staged = stg
	bt.mu.Unlock()
	if bt.pending != nil {
		bt.pending.Close()
		bt.pending = nil
	}
	s.st.setInflight(bt.d.Digest, -1)
	return nil, false
}

// prefetchBlob downloads a hinted blob into stg until it is staged whole
// (and verified) or claimed; a claimed download is left open in
// bt.pending. started reports whether the source answered a request for
// it before the claim.
func (e *Engine) prefetchBlob(ctx context.Context, bt *blobTask, stg *stage, st *statsCounter) (started bool, err error) {
	mismatches := 0
	err = e.retryDo(ctx, "prefetch blob "+bt.d.Digest.String(), st, func(ctx context.Context) (bool, error) {
		from := stg.off
		if !stg.complete && stg.off == bt.d.Size {
			if err := stg.finish(); err != nil {
				return false, err
			}
		}
		if stg.complete {
			return false, nil
		}
		body, err := bt.src.OpenBlob(ctx, bt.d, stg.off)
		if errors.Is(err, ErrNoRange) {
			stg.reset()
			from = 0
			body, err = bt.src.OpenBlob(ctx, bt.d, 0)
		}
		if err != nil {
			return false, err
		}
		started = true
		up := &upstreamReader{ctx: ctx, e: e, r: body, stg: stg, st: st, d: bt.d}
		buf := make([]byte, 32<<10)
		for {
			if bt.isRejected() {
				body.Close()
				return stg.off > from, nil
			}
			if bt.isClaimed() {
				bt.pending = body
				return stg.off > from, nil
			}
			_, err := up.Read(buf)
			if stg.complete {
				st.setInflight(bt.d.Digest, -1)
				body.Close()
				// Durable before the task serves targets: a crash now
				// does not fetch it again.
				return true, stg.checkpoint()
			}
			if err == nil {
				continue
			}
			body.Close()
			if errors.Is(err, ErrDigestMismatch) {
				if mismatches++; mismatches >= 2 {
					return false, Permanent(err)
				}
				return true, err
			}
			if cerr := stg.checkpoint(); cerr != nil {
				return stg.off > from, Permanent(cerr)
			}
			return stg.off > from, err
		}
	})
	return started, err
}

// dropUnused removes the stages of hinted blobs that no walk reached and
// counts them; when the walks did not finish (walked false: a failed copy)
// it only closes them, so the next copy resumes them. Call it once every
// task has finished.
func (s *blobSched) dropUnused(walked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, bt := range s.hints {
		stg := bt.takeStage()
		if s.reached[bt.d.Digest] || !walked {
			if stg != nil {
				stg.close() // not taken: the copy stopped early; resumable
			}
			continue
		}
		if stg != nil {
			n := stg.off
			stg.remove()
			s.st.add(func(st *Stats) { st.HintsUnused++; st.HintBytesUnused += n })
			s.e.o.log.Warn("hinted blob not reached by any manifest: dropped", "digest", bt.d.Digest.String(), "bytes", n)
		}
	}
	s.hints = nil
}

// start runs bt when its predecessor is done and a slot is free.
func (s *blobSched) start(bt *blobTask) {
	s.g.Go(func() error {
		defer close(bt.done)
		if bt.prev != nil {
			select {
			case <-bt.prev.done:
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
		defer func() { <-s.sem }()
		if err := s.ctx.Err(); err != nil {
			return err // another blob failed while this one queued
		}
		var stg *stage
		if bt.hint {
			var ok bool
			if stg, ok = s.prefetch(bt); !ok {
				return s.ctx.Err()
			}
		}
		if err := s.e.copyBlobTask(s.ctx, bt, stg, s.st); err != nil {
			return s.fail(err)
		}
		return nil
	})
}

type manifestTask struct {
	d    v1.Descriptor
	raw  []byte
	dst  Target
	tags []string
}

type walked struct {
	plan      Plan
	children  []manifestTask // written after blobs, in order
	roots     []manifestTask // written last, in job order
	skipRoots []bool
}

// Plan walks jobs and checks what their targets already hold.
func (e *Engine) Plan(ctx context.Context, jobs ...Job) (*Plan, error) {
	w, err := e.walk(ctx, jobs, true, nil, nil)
	if err != nil {
		return nil, err
	}
	return &w.plan, nil
}

// Copy copies every job. Blobs move first (in parallel, skipping present
// ones), then child manifests (children before parents), then the jobs'
// roots and their tags (see writeManifests for what runs at once). To make
// one root the commit point of others, copy it in a later Copy call. On error nothing is rolled back:
// what was written is valid content, and a re-run continues.
func (e *Engine) Copy(ctx context.Context, jobs ...Job) (Stats, error) {
	var st statsCounter
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(cctx)
	sched := &blobSched{e: e, st: &st, g: g, ctx: gctx, sem: make(chan struct{}, e.o.concurrency),
		ids: map[Target]int{}, seen: map[schedKey]bool{}, open: map[v1.Hash]*blobTask{}, reached: map[v1.Hash]bool{},
		walkDone: make(chan struct{}), cancel: cancel}
	walked := false
	defer func() { sched.dropUnused(walked) }()
	// Blobs start as the walks find them (sched.add), hinted ones before
	// (sched.hint); the walks go on.
	w, err := e.walk(gctx, jobs, false, func(i int, d v1.Descriptor) { sched.add(i, jobs[i], d) },
		func(i int, d v1.Descriptor) { sched.hint(jobs[i], d) })
	close(sched.walkDone)
	if err != nil {
		cancel()
		if gerr := sched.wait(); gerr != nil && !errors.Is(gerr, context.Canceled) {
			// A blob's failure stopped the walks: it is the cause.
			if errors.Is(err, context.Canceled) {
				return st.get(), gerr
			}
			err = errors.Join(err, gerr)
		}
		return st.get(), err
	}
	walked = true
	for _, s := range w.skipRoots {
		if s {
			st.add(func(s *Stats) { s.ManifestsSkipped++ })
		}
	}
	if err := sched.wait(); err != nil {
		return st.get(), err
	}
	sched.dropUnused(true)
	if err := e.writeManifests(ctx, w.children, w.roots, &st); err != nil {
		return st.get(), err
	}
	return st.get(), nil
}

// writeManifests writes a Copy's manifests once its blobs are in, each
// only after everything it references: the children that are image
// manifests (they reference blobs only) at once, then the child indexes
// in walk order (an index's children come before it), then the roots
// without tags at once, then the tagged roots in job order (a layout's
// index.json then lists tags in the same order every time). Each write
// is a round trip to the target: on site, the tail of a sync.
func (e *Engine) writeManifests(ctx context.Context, children, roots []manifestTask, st *statsCounter) error {
	var indexes, tagged []manifestTask
	var leaves, untagged []manifestTask
	for _, m := range children {
		if oci.IsIndex(m.d.MediaType) {
			indexes = append(indexes, m)
		} else {
			leaves = append(leaves, m)
		}
	}
	for _, m := range roots {
		if len(m.tags) > 0 {
			tagged = append(tagged, m)
		} else {
			untagged = append(untagged, m)
		}
	}
	parallel := func(ms []manifestTask) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(e.o.concurrency)
		for _, m := range ms {
			g.Go(func() error { return e.writeManifest(gctx, m, st) })
		}
		return g.Wait()
	}
	if err := parallel(leaves); err != nil {
		return err
	}
	for _, m := range indexes {
		if err := e.writeManifest(ctx, m, st); err != nil {
			return err
		}
	}
	if err := parallel(untagged); err != nil {
		return err
	}
	for _, m := range tagged {
		if err := e.writeManifest(ctx, m, st); err != nil {
			return err
		}
	}
	return nil
}

// jobWalk is what walking one job found.
type jobWalk struct {
	present bool
	nodes   []oci.Node
	missing map[v1.Hash]bool // dry runs: blobs the target lacks
}

// walk fetches every manifest of every job (verified; jobs in parallel, as
// each manifest is a round trip on a slow link) and asks targets what they
// hold. With dry, blob presence is recorded in the plan only. onHint gets
// each job's hints before its walk starts.
func (e *Engine) walk(ctx context.Context, jobs []Job, dry bool, onBlob, onHint func(job int, d v1.Descriptor)) (*walked, error) {
	for i, j := range jobs {
		if j.Src == nil || j.Dst == nil {
			return nil, fmt.Errorf("job %d: source and target are required", i)
		}
		if err := oci.CheckDigest(j.Root.Digest); err != nil {
			return nil, fmt.Errorf("job %d: root: %w", i, err)
		}
	}
	found := make([]jobWalk, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	// Each manifest is a round trip: on a long link they are what keeps
	// blobs from starting, so fetch many at once.
	g.SetLimit(max(e.o.concurrency, walkConcurrency))
	for i, j := range jobs {
		g.Go(func() error {
			r := &found[i]
			trust := e.o.trustRoots && !j.Recheck
			if trust || dry {
				present, err := e.rootPresent(gctx, j)
				if err != nil {
					return err
				}
				r.present = present
				if present && trust {
					return nil
				}
			}
			if onHint != nil && !j.RootOnly {
				for _, h := range j.Hints {
					onHint(i, h)
				}
			}
			collect := func(n oci.Node) error {
				r.nodes = append(r.nodes, n)
				if onBlob != nil && n.Raw == nil {
					onBlob(i, n.Descriptor)
				}
				return nil
			}
			if j.RootOnly {
				raw, err := e.fetchManifest(gctx, j.Src, j.Root)
				if err != nil {
					return err
				}
				return collect(oci.Node{Descriptor: j.Root, Raw: raw})
			}
			if err := oci.Walk(gctx, retryFetcher{e, j.Src}, j.Root, j.Platforms, collect); err != nil {
				return err
			}
			if !dry {
				return nil
			}
			r.missing = map[v1.Hash]bool{}
			checked := map[v1.Hash]bool{}
			for _, n := range r.nodes {
				d := n.Descriptor
				if n.Raw != nil || checked[d.Digest] {
					continue
				}
				checked[d.Digest] = true
				var ok bool
				err := e.retryDo(gctx, "check blob "+d.Digest.String(), nil, func(ctx context.Context) (bool, error) {
					var err error
					ok, err = j.Dst.BlobExists(ctx, d)
					return false, err
				})
				if err != nil {
					return err
				}
				r.missing[d.Digest] = !ok
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// Merge in job order, so what is written, and when, does not depend
	// on which walk finished first.
	w := &walked{skipRoots: make([]bool, len(jobs))}
	// Targets are told apart by identity where they are comparable (a
	// *Remote, a *Layout); others count as distinct per job.
	type key struct {
		dst int
		d   v1.Hash
	}
	ids := map[Target]int{}
	dstID := func(i int, t Target) int {
		if !reflect.TypeOf(t).Comparable() {
			return -1 - i
		}
		if id, ok := ids[t]; ok {
			return id
		}
		ids[t] = len(ids)
		return ids[t]
	}
	seenBlob := map[key]bool{}
	seenManifest := map[key]bool{}
	for i, j := range jobs {
		r := found[i]
		jp := JobPlan{Root: j.Root, Present: r.present}
		if r.present && e.o.trustRoots && !j.Recheck {
			w.skipRoots[i] = true
			w.plan.Jobs = append(w.plan.Jobs, jp)
			continue
		}
		id := dstID(i, j.Dst)
		for _, n := range r.nodes {
			if n.Raw != nil {
				jp.Manifests++
				mt := manifestTask{d: n.Descriptor, raw: n.Raw, dst: j.Dst}
				if n.Parent == nil {
					mt.tags = j.Tags
					w.roots = append(w.roots, mt)
					continue
				}
				k := key{id, n.Descriptor.Digest}
				if !seenManifest[k] {
					seenManifest[k] = true
					w.children = append(w.children, mt)
				}
				continue
			}
			d := n.Descriptor
			jp.Bytes += d.Size
			k := key{id, d.Digest}
			if seenBlob[k] {
				continue
			}
			seenBlob[k] = true
			w.plan.Blobs++
			w.plan.Bytes += d.Size
			if dry {
				if r.missing[d.Digest] {
					jp.Missing += d.Size
					w.plan.MissingBlobs++
					w.plan.MissingBytes += d.Size
				}
				continue
			}
		}
		w.plan.Jobs = append(w.plan.Jobs, jp)
	}
	return w, nil
}

// rootPresent reports whether the job's root and all its tags are in Dst.
func (e *Engine) rootPresent(ctx context.Context, j Job) (bool, error) {
	var present bool
	err := e.retryDo(ctx, "check "+j.Root.Digest.String(), nil, func(ctx context.Context) (bool, error) {
		ok, err := j.Dst.ManifestExists(ctx, j.Root)
		if err != nil || !ok {
			present = false
			return false, err
		}
		for _, t := range j.Tags {
			d, err := j.Dst.ResolveTag(ctx, t)
			if errors.Is(err, ErrNotFound) || (err == nil && d.Digest != j.Root.Digest) {
				present = false
				return false, nil
			}
			if err != nil {
				return false, err
			}
		}
		present = true
		return false, nil
	})
	return present, err
}

type retryFetcher struct {
	e   *Engine
	src Source
}

func (f retryFetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.e.fetchManifest(ctx, f.src, d)
}

func (e *Engine) fetchManifest(ctx context.Context, src Source, d v1.Descriptor) ([]byte, error) {
	var raw []byte
	mismatches := 0
	err := e.retryDo(ctx, "fetch manifest "+d.Digest.String(), nil, func(ctx context.Context) (bool, error) {
		var err error
		raw, err = src.FetchManifest(ctx, d)
		if err != nil {
			return false, err
		}
		if err := oci.VerifyBytes(raw, d); err != nil {
			mismatches++
			err = fmt.Errorf("%w: %w", ErrDigestMismatch, err)
			if mismatches >= 2 {
				return false, Permanent(err)
			}
			return false, err
		}
		return false, nil
	})
	return raw, err
}

func (e *Engine) writeManifest(ctx context.Context, m manifestTask, st *statsCounter) error {
	if len(m.tags) == 0 {
		var ok bool
		err := e.retryDo(ctx, "check manifest "+m.d.Digest.String(), st, func(ctx context.Context) (bool, error) {
			var err error
			ok, err = m.dst.ManifestExists(ctx, m.d)
			return false, err
		})
		if err != nil {
			return err
		}
		if ok {
			st.add(func(s *Stats) { s.ManifestsSkipped++ })
			e.emit(Event{Kind: ManifestDone, Digest: m.d.Digest, Size: m.d.Size})
			return nil
		}
		m.tags = []string{""}
	}
	for _, tag := range m.tags {
		err := e.retryDo(ctx, "write manifest "+m.d.Digest.String(), st, func(ctx context.Context) (bool, error) {
			return false, m.dst.WriteManifest(ctx, m.d, m.raw, tag)
		})
		if err != nil {
			return err
		}
		st.add(func(s *Stats) { s.ManifestsWritten++ })
	}
	e.emit(Event{Kind: ManifestDone, Digest: m.d.Digest, Size: m.d.Size})
	return nil
}

// copyBlobTask brings one blob to every target that needs it: skip where
// present, mount where possible, else stream it once from the source
// (staged, so further targets read it from disk).
//
// stg is a claimed hint's stage (nil for others); the task takes it over.
func (e *Engine) copyBlobTask(ctx context.Context, bt *blobTask, stg *stage, st *statsCounter) error {
	defer func() {
		if bt.pending != nil {
			bt.pending.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		if stg != nil {
			stg.close()
		}
		return err
	}
	defer func() {
		if stg != nil {
			stg.close()
		}
	}()
	for dst := bt.nextDst(); dst != nil; dst = bt.nextDst() {
		var present bool
		err := e.retryDo(ctx, "check blob "+bt.d.Digest.String(), st, func(ctx context.Context) (bool, error) {
			var err error
			present, err = dst.BlobExists(ctx, bt.d)
			return false, err
		})
		if err != nil {
			return err
		}
		if present {
			e.place(bt.d.Digest, dst)
			st.skip(bt.d, false)
			e.emit(Event{Kind: BlobSkipped, Digest: bt.d.Digest, Size: bt.d.Size, Offset: bt.d.Size, Done: st.doneBytes(), Total: st.total.Load()})
			continue
		}
		if e.tryLink(ctx, bt, dst) {
			e.place(bt.d.Digest, dst)
			st.skip(bt.d, true)
			e.emit(Event{Kind: BlobSkipped, Digest: bt.d.Digest, Size: bt.d.Size, Offset: bt.d.Size, Done: st.doneBytes(), Total: st.total.Load()})
			continue
		}
		if ok, err := e.tryMount(ctx, bt, dst); err != nil {
			return err
		} else if ok {
			e.place(bt.d.Digest, dst)
			st.skip(bt.d, true)
			e.emit(Event{Kind: BlobSkipped, Digest: bt.d.Digest, Size: bt.d.Size, Offset: bt.d.Size, Done: st.doneBytes(), Total: st.total.Load()})
			continue
		}
		if stg == nil {
			stg, err = openStage(e.o.staging, bt.d)
			if err != nil {
				return err
			}
		}
		if err := e.transferBlob(ctx, bt, dst, stg, st); err != nil {
			return err
		}
		e.place(bt.d.Digest, dst)
	}
	if stg != nil {
		stg.remove()
		stg = nil
	}
	return nil
}

// place records that dst holds blob h.
func (e *Engine) place(h v1.Hash, dst Target) {
	l, ok := dst.(Located)
	if !ok {
		return
	}
	loc := l.Location()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.placed[h] {
		if p == loc {
			return
		}
	}
	if len(e.placed[h]) < 8 {
		e.placed[h] = append(e.placed[h], loc)
	}
}

// tryLink asks a Linker target to link a blob its registry already holds.
// A failure is not an error: the blob is then mounted or copied.
func (e *Engine) tryLink(ctx context.Context, bt *blobTask, dst Target) bool {
	l, ok := dst.(Linker)
	if !ok {
		return false
	}
	var linked bool
	err := e.retryDo(ctx, "link blob "+bt.d.Digest.String(), nil, func(ctx context.Context) (bool, error) {
		var err error
		linked, err = l.LinkBlob(ctx, bt.d)
		return false, err
	})
	if err != nil {
		e.o.log.Debug("link failed", "digest", bt.d.Digest.String(), "err", err)
		return false
	}
	return linked
}

func (e *Engine) tryMount(ctx context.Context, bt *blobTask, dst Target) (bool, error) {
	m, ok := dst.(Mounter)
	if !ok {
		return false, nil
	}
	here := m.Location()
	var from []string
	if l, ok := bt.src.(Located); ok {
		if sl := l.Location(); sl.Registry == here.Registry && sl.Repository != here.Repository {
			from = append(from, sl.Repository)
		}
	}
	e.mu.Lock()
	written := append([]oci.Location(nil), e.placed[bt.d.Digest]...)
	e.mu.Unlock()
	for _, l := range written {
		if l.Registry == here.Registry && l.Repository != here.Repository {
			from = append(from, l.Repository)
		}
	}
	for _, repo := range from {
		var mounted bool
		err := e.retryDo(ctx, "mount blob "+bt.d.Digest.String(), nil, func(ctx context.Context) (bool, error) {
			var err error
			mounted, err = m.MountBlob(ctx, bt.d, repo)
			return false, err
		})
		if err != nil {
			// A refused mount is not a failure: copy the bytes instead.
			e.o.log.Debug("mount failed", "digest", bt.d.Digest.String(), "from", repo, "err", err)
			continue
		}
		if mounted {
			return true, nil
		}
	}
	return false, nil
}

// transferBlob streams the blob to dst, resuming the source at the staged
// offset on every attempt. Bytes already staged are re-sent to dst from disk,
// never fetched again over the link.
func (e *Engine) transferBlob(ctx context.Context, bt *blobTask, dst Target, stg *stage, st *statsCounter) error {
	mismatches := 0
	return e.retryDo(ctx, "copy blob "+bt.d.Digest.String(), st, func(ctx context.Context) (bool, error) {
		start := stg.off
		err := e.attemptBlob(ctx, bt, dst, stg, st)
		progress := stg.off > start
		if err == nil {
			st.add(func(s *Stats) { s.BlobsCopied++; s.BytesWritten += bt.d.Size })
			st.setInflight(bt.d.Digest, -1)
			st.addDone(bt.d.Digest, bt.d.Size)
			e.emit(Event{Kind: BlobDone, Digest: bt.d.Digest, Size: bt.d.Size, Offset: bt.d.Size, Done: st.doneBytes(), Total: st.total.Load()})
			return progress, nil
		}
		defer st.setInflight(bt.d.Digest, stg.off)
		if !errors.Is(err, ErrDigestMismatch) && isDigestRefused(err) {
			err = fmt.Errorf("%w: %w", ErrDigestMismatch, err)
		}
		if errors.Is(err, ErrDigestMismatch) {
			// Whoever found it (the stage's own check, which has dropped
			// its bytes already, or a target that hashed what we sent: a
			// registry's DIGEST_INVALID, a layout's own check), the
			// staged bytes are suspect. Start over once.
			stg.reset()
			mismatches++
			if mismatches >= 2 {
				return false, Permanent(fmt.Errorf("blob %s: digest mismatch twice, giving up: %w", bt.d.Digest, err))
			}
			return true, err
		}
		if cerr := stg.checkpoint(); cerr != nil {
			return progress, Permanent(cerr)
		}
		return progress, err
	})
}

func isDigestRefused(err error) bool {
	var he *registryclient.HTTPError
	return errors.As(err, &he) && he.Status == 400 && strings.Contains(he.Body, "DIGEST_INVALID")
}

func (e *Engine) attemptBlob(ctx context.Context, bt *blobTask, dst Target, stg *stage, st *statsCounter) error {
	var parts []io.Reader
	var up *upstreamReader
	if !stg.complete && stg.off == bt.d.Size {
		// Every byte is staged (an empty blob, or a tail hashed from disk
		// after a restart): the digest decides. A mismatch has dropped the
		// stage; the retry starts from byte 0.
		if err := stg.finish(); err != nil {
			return err
		}
	}
	if p := stg.prefix(); p != nil {
		parts = append(parts, p)
	}
	if !stg.complete {
		body := bt.takePending()
		var err error
		if body == nil {
			body, err = bt.src.OpenBlob(ctx, bt.d, stg.off)
		}
		if errors.Is(err, ErrNoRange) {
			stg.reset()
			parts = nil
			body, err = bt.src.OpenBlob(ctx, bt.d, 0)
		}
		if err != nil {
			return err
		}
		defer body.Close()
		up = &upstreamReader{ctx: ctx, e: e, r: body, stg: stg, st: st, d: bt.d}
		parts = append(parts, up)
	}
	vr := &sizeReader{r: io.MultiReader(parts...), left: bt.d.Size}
	if err := dst.WriteBlob(ctx, bt.d, vr); err != nil {
		// Report the source's failure (a cut link, a bad digest) rather
		// than the target's view of an aborted upload.
		if uerr := up.firstErr(); uerr != nil {
			return uerr
		}
		return err
	}
	if vr.left != 0 {
		return fmt.Errorf("blob %s: target stopped reading with %d bytes left", bt.d.Digest, vr.left)
	}
	return nil
}

// upstreamReader reads the rest of a blob from its source: rate-limited,
// counted, appended to the stage and hashed; at the declared size it checks
// the digest and only then returns io.EOF. It never reads past the size.
type upstreamReader struct {
	ctx context.Context
	e   *Engine
	r   io.Reader
	stg *stage
	st  *statsCounter
	d   v1.Descriptor
	// ev counts the bytes read since the last progress event; arrived is
	// set once the first bytes have been reported.
	ev      int64
	arrived bool
	// err is the first error returned. An in-process target may still be
	// reading when WriteBlob has returned (a cancelled upload): mu guards it.
	mu  sync.Mutex
	err error
}

func (u *upstreamReader) Read(p []byte) (int, error) {
	n, err := u.read(p)
	if err != nil && err != io.EOF {
		u.mu.Lock()
		if u.err == nil {
			u.err = err
		}
		u.mu.Unlock()
	}
	return n, err
}

// firstErr is the first error Read returned; nil for a nil reader.
func (u *upstreamReader) firstErr() error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *upstreamReader) read(p []byte) (int, error) {
	left := u.d.Size - u.stg.off
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	if l := u.e.o.limiter; l != nil {
		if len(p) > l.Burst() {
			p = p[:l.Burst()]
		}
		if err := l.WaitN(u.ctx, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := u.r.Read(p)
	if n > 0 {
		if werr := u.stg.write(p[:n]); werr != nil {
			return 0, werr
		}
		u.st.add(func(s *Stats) { s.BytesRead += int64(n) })
		u.ev += int64(n)
		u.st.setInflight(u.d.Digest, u.stg.off)
		// The first bytes of each read, then every MiB: a copy that
		// stops early (a link budget spent in the middle of small blobs)
		// has still told what it is moving and out of how much.
		if u.ev >= 1<<20 || !u.arrived {
			u.ev, u.arrived = 0, true
			u.e.emit(Event{Kind: BlobProgress, Digest: u.d.Digest, Size: u.d.Size, Offset: u.stg.off, Done: u.st.doneBytes(), Total: u.st.total.Load()})
		}
		if u.stg.off == u.d.Size {
			// The last byte arrived: the digest decides before the
			// target may see the end of the stream.
			if ferr := u.stg.finish(); ferr != nil {
				return n, ferr
			}
			return n, nil
		}
	}
	if err == io.EOF {
		return n, fmt.Errorf("blob %s: source ended at byte %d of %d: %w", u.d.Digest, u.stg.off, u.d.Size, io.ErrUnexpectedEOF)
	}
	return n, err
}

// sizeReader hands a target exactly the declared bytes.
type sizeReader struct {
	r    io.Reader
	left int64
}

func (s *sizeReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err == io.EOF && s.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (e *Engine) retryDo(ctx context.Context, what string, st *statsCounter, f func(context.Context) (bool, error)) error {
	err := e.o.retry.do(ctx, func(err error, wait time.Duration) {
		if st != nil {
			st.add(func(s *Stats) { s.Retries++ })
		}
		e.o.log.Warn("retrying", "op", what, "in", wait.Round(time.Millisecond).String(), "err", err)
		e.emit(Event{Kind: Retrying, Err: err})
	}, f)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (e *Engine) emit(ev Event) {
	if e.o.progress != nil {
		e.o.progress(ev)
	}
}

// Progress (Event.Done and Event.Total) counts each blob once, however
// many targets of the copy take it (an image's repository and a bundle
// repository it is linked into): the bytes to move, not the writes.
type statsCounter struct {
	mu       sync.Mutex
	s        Stats
	inflight map[v1.Hash]int64
	finished map[v1.Hash]bool // blobs counted in done
	done     atomic.Int64
	total    atomic.Int64 // blob bytes of the Copy found so far, each blob once
}

func (c *statsCounter) add(f func(*Stats)) {
	c.mu.Lock()
	f(&c.s)
	c.mu.Unlock()
}

func (c *statsCounter) get() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// addDone counts blob h of n bytes as done, once.
func (c *statsCounter) addDone(h v1.Hash, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished[h] {
		return
	}
	if c.finished == nil {
		c.finished = map[v1.Hash]bool{}
	}
	c.finished[h] = true
	c.done.Add(n)
}

// doneBytes is the bytes of finished blobs plus what arrived of blobs in
// flight, so progress (and an ETA) moves within a large blob.
func (c *statsCounter) doneBytes() int64 {
	c.mu.Lock()
	var n int64
	for _, off := range c.inflight {
		n += off
	}
	c.mu.Unlock()
	return c.done.Load() + n
}

// setInflight records how much of blob h has arrived; -1 forgets it.
func (c *statsCounter) setInflight(h v1.Hash, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight == nil {
		c.inflight = map[v1.Hash]int64{}
	}
	if off < 0 {
		delete(c.inflight, h)
		return
	}
	c.inflight[h] = off
}

func (c *statsCounter) skip(d v1.Descriptor, mounted bool) {
	c.add(func(s *Stats) {
		s.BytesSkipped += d.Size
		if mounted {
			s.BlobsMounted++
		} else {
			s.BlobsSkipped++
		}
	})
	c.addDone(d.Digest, d.Size)
}
