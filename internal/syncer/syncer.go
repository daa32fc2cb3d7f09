// Package syncer brings the bundles of the revisions the git mirror holds
// into the edge registry while the link is up: only what is missing,
// resumable, every byte verified by the copy engine, each bundle index
// written last as the commit point. It decides what to copy; transfer moves
// it. It also applies retention: bundles no longer wanted (and never
// deployed) are deleted and the registry garbage-collected.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// RevisionSource is what sync needs from the git mirror.
type RevisionSource interface {
	RefTips(ctx context.Context, idOrURL string) ([]gitmirror.Ref, error)
	FirstParents(ctx context.Context, idOrURL, sha string, n int) ([]string, error)
	// Advertised lists the revisions a gated repository advertises: their
	// bundles stay whatever retention would say, as Argo CD may deploy
	// them at any moment.
	Advertised(ctx context.Context, idOrURL string) ([]gitmirror.Ref, error)
}

// LocalRegistry is the edge registry as sync reaches it: in process, with
// write access.
type LocalRegistry interface {
	Transport() http.RoundTripper
}

// Collector garbage-collects the edge registry after retention deleted
// manifests. *registry.Registry implements it.
type Collector interface {
	Collect(ctx context.Context) error
}

// Deployed reports revisions that verify recorded as deployed: retention
// never deletes their bundles, and the tags of the current one stay on its
// digests until another revision is activated.
type Deployed interface {
	IsDeployed(repoID, sha string) bool
	Current(repoID string) string
}

// syncConcurrency is how many blobs a pass moves at once.
const syncConcurrency = 32

// localHost names the edge registry for in-process requests; the transport
// never dials it.
const localHost = "edge.ballast.invalid"

// Options configure a Syncer.
type Options struct {
	Config *config.Config
	Mirror RevisionSource
	Local  LocalRegistry
	// Collector, when set, is run after retention deleted something.
	Collector Collector
	// Deployed, when set, protects deployed revisions from retention.
	Deployed Deployed
	Logger   *slog.Logger
	// Metrics, when set, receives sync's Prometheus metrics.
	Metrics prometheus.Registerer
	// Interval between passes when nothing triggers one. The default value
	// is one minute.
	Interval time.Duration
	// UpstreamTransport carries every request to upstream registries. The
	// default is a clone of http.DefaultTransport.
	UpstreamTransport http.RoundTripper
	// EngineOptions are appended to the copy engine's options (tests make
	// retries fast with them).
	EngineOptions []transfer.Option
	// Retention deletes bundles no longer wanted. The default value is true
	// in the daemon; tests may turn it off.
	DisableRetention bool
	// Notify, when set, is called with a repository id when one of its
	// revisions becomes complete and after every pass over it: the
	// readiness gate listens. It is called from the pass and must return
	// at once.
	Notify func(repoID string)
	// Clock gives the link policy (windows, budget periods) the time. The
	// default is the wall clock.
	Clock linkplan.Clock
	// DisableDeltas makes sync ignore the sub-layer deltas upstream
	// publishes (delta.IndexTag) and fetch every missing layer whole. The
	// default value is false.
	DisableDeltas bool
	// Waiting, when set, reports whether the gate is waiting on revision
	// sha of repository repoID (a verify of it answered NOT READY
	// recently): such revisions are fetched first. It must return at once.
	Waiting func(repoID, sha string) bool
	// Demanded, when set, lists revisions of repository repoID asked for
	// beyond its wanted history (each tracked ref's tip and keepRevisions
	// before it): the gate waits on one (a verify of an older revision, a
	// rollback), or an edge downstream asked this edge's registry for its
	// bundle. Each one the mirror holds as a commit is wanted while
	// listed, at the front of the fetch order; at most maxDemanded per
	// repository are taken. It must return at once.
	Demanded func(repoID string) []string
}

// maxDemanded bounds the revisions per repository that Options.Demanded
// adds to the wanted ones.
const maxDemanded = 16

// Syncer runs sync passes. It is safe for concurrent use; passes are
// serialized.
type Syncer struct {
	o         Options
	log       *slog.Logger
	platforms oci.Platforms
	engine    *transfer.Engine
	presence  *registryclient.Presence
	status    *tracker
	metrics   *metrics
	// passMu serializes passes; it is held through blob downloads.
	passMu sync.Mutex
	// stateMu is the short lock on what the edge serves: tag writes,
	// bundle index writes, retention and activation. It is never held
	// across a download, so an activation (a rollback) during a long sync
	// waits for one tag write, not for the pass.
	stateMu sync.Mutex
	kick    chan struct{}
	staging string // partial blobs (transfer's staging directory)
	// Sub-layer deltas (deltas.go): their own engine (no progress events,
	// a short retry budget inside the blob's own), work dirs, one
	// reconstruction at a time, counters.
	deltaEngine *transfer.Engine
	deltaDir    string
	deltaLayout string
	deltaSem    chan struct{}
	deltaStats  deltaCounters
	plan        *linkplan.Plan
	gate        *linkGate
	// now is a pending manual "sync now" (SyncNow), taken by the next pass.
	now struct {
		sync.Mutex
		o       *linkplan.Override
		pending bool
	}
	// upstreams are the bundles repositories' clients, by repository and
	// credentials (upstream).
	upstreams struct {
		sync.Mutex
		m map[string]*registryclient.Remote
	}
	current struct {
		sync.Mutex
		repo, sha string
		started   time.Time
		// hinted is the size of the blobs the revision's bundle index
		// hints and the site lacks: its total before the walks reach
		// them (setHinted).
		hinted int64
	}
}

// New builds a Syncer. It creates the staging dir under the data dir
// (datadir.Layout.Staging) and starts nothing: Run or Pass do the work.
func New(o Options) (*Syncer, error) {
	if o.Config == nil || o.Mirror == nil || o.Local == nil {
		return nil, errors.New("syncer: Config, Mirror and Local are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.UpstreamTransport == nil {
		o.UpstreamTransport = registryclient.NewTransport()
	}
	plats, err := oci.ParsePlatforms(strings.Join(o.Config.Platforms, ","))
	if err != nil {
		return nil, fmt.Errorf("platforms: %w", err)
	}
	s := &Syncer{o: o, log: o.Logger.With("component", "sync"), platforms: plats, status: newTracker(), kick: make(chan struct{}, 1)}
	if o.Clock == nil {
		o.Clock = linkplan.SystemClock{}
		s.o.Clock = o.Clock
	}
	sched, err := o.Config.Link.Schedule()
	if err != nil {
		return nil, err
	}
	budget, err := o.Config.Link.BudgetLimits()
	if err != nil {
		return nil, err
	}
	s.plan = &linkplan.Plan{Clock: o.Clock, Schedule: sched, GitPollOutsideWindows: o.Config.Link.PollOutsideWindows()}
	if !budget.IsZero() {
		if s.plan.Ledger, err = linkplan.OpenLedger(datadir.Of(o.Config.DataDir).LinkBudget(), budget, o.Clock); err != nil {
			return nil, err
		}
	}
	s.gate = newLinkGate(s.plan)
	s.metrics = newMetrics(o.Metrics, s)
	s.o.UpstreamTransport = meteredTransport{next: o.UpstreamTransport, gate: s.gate, count: s.countLink}
	staging := datadir.Of(o.Config.DataDir).Staging()
	s.staging = staging
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return nil, fmt.Errorf("sync staging dir: %w", err)
	}
	eopts := []transfer.Option{
		transfer.WithStagingDir(staging),
		// The link's rate cap (per window) is meteredTransport's.
		transfer.WithProgress(s.onProgress),
		transfer.WithLogger(s.log),
		// A long link (a GEO satellite's 600 ms round trip) needs many
		// blobs in flight to stay full: each blob's request costs a
		// round trip before its first byte, and blobs of one size finish
		// together. Memory per blob in flight is a few buffers.
		transfer.WithConcurrency(syncConcurrency),
		// A dropped link is the normal case: keep trying for a while
		// within one pass; the next pass starts again anyway. The first
		// tries come every 100–200 ms for about 2 s, so a short outage
		// costs little more than itself; then the backoff doubles up to
		// 30 s (about 2 minutes of a dead link in all).
		transfer.WithRetry(22, 200*time.Millisecond, 30*time.Second),
		transfer.WithFastRetries(14),
	}
	eng, err := transfer.New(append(eopts, o.EngineOptions...)...)
	if err != nil {
		return nil, err
	}
	s.engine = eng
	deltaOpts := []transfer.Option{transfer.WithStagingDir(staging), transfer.WithLogger(s.log), transfer.WithRetry(4, 200*time.Millisecond, 2*time.Second)}
	if s.deltaEngine, err = transfer.New(append(deltaOpts, o.EngineOptions...)...); err != nil {
		return nil, err
	}
	s.deltaDir = datadir.Of(o.Config.DataDir).Deltas()
	s.deltaLayout = filepath.Join(s.deltaDir, "layout")
	s.deltaSem = make(chan struct{}, 1)
	if err := os.MkdirAll(s.deltaDir, 0o750); err != nil {
		return nil, fmt.Errorf("sync deltas dir: %w", err)
	}
	// Layers made from deltas by a process that died (kill -9) are not
	// trusted: they are made again, from the staged patch.
	if old, _ := filepath.Glob(filepath.Join(s.deltaDir, "made-*")); len(old) > 0 {
		for _, p := range old {
			os.RemoveAll(p)
		}
	}
	s.presence = registryclient.NewPresence(localHost, registryclient.WithInsecure(true), registryclient.WithTransport(o.Local.Transport()),
		registryclient.WithKeychain(authn.NewMultiKeychain()))
	for _, r := range o.Config.Repositories {
		if r.Bundles == "" {
			continue
		}
		id, err := imageref.RepoID(r.URL)
		if err != nil {
			return nil, err
		}
		s.status.setWanted(id, r.URL, r.Bundles, nil)
	}
	return s, nil
}

// Status returns a snapshot of sync's state.
func (s *Syncer) Status() Status {
	st := s.status.snapshot()
	st.Platforms = s.o.Config.Platforms
	if st.Platforms == nil {
		st.Platforms = []string{}
	}
	st.Link = s.linkStatus()
	s.forecast(&st)
	return st
}

// Platforms is the edge's platform selection (empty: all).
func (s *Syncer) Platforms() oci.Platforms { return s.platforms }

// PassResult summarizes one pass.
type PassResult struct {
	Wanted   int // revisions wanted over all repositories
	Complete int // of them, complete locally
	NoBundle int // of them, without a bundle upstream
	Failed   int // of them, failed this pass
	Deleted  int // bundles deleted by retention
	// Waiting counts wanted revisions left for later by the link policy
	// (no window open, budget spent); LinkStop says why.
	Waiting  int
	LinkStop string
	// LinkUntil is when the link policy may next allow the link (zero:
	// unknown or not stopped).
	LinkUntil time.Time
}

// Done reports whether every wanted revision that has a bundle upstream is
// complete: what `sync --once` waits for.
func (p PassResult) Done() bool { return p.Failed == 0 && p.Complete+p.NoBundle == p.Wanted }

// SyncNow asks for a pass now that may use the link outside its windows
// (o.Window) and past a spent budget (o.Budget): the running loop (Run)
// takes it at once, or after the pass under way. It never blocks.
func (s *Syncer) SyncNow(o linkplan.Override) {
	s.now.Lock()
	s.now.o, s.now.pending = &o, true
	s.now.Unlock()
	s.Kick()
}

// GitPollAllowed reports whether the link policy lets the git mirror poll
// upstream now (link.gitPollOutsideWindows, or a window open, or a manual
// sync now pending).
func (s *Syncer) GitPollAllowed() bool {
	s.now.Lock()
	pending := s.now.pending
	s.now.Unlock()
	return pending || s.plan.GitPollAllowed()
}

// Plan is the edge's link policy.
func (s *Syncer) Plan() *linkplan.Plan { return s.plan }

// repoPass is one repository's part of a pass.
type repoPass struct {
	r          *config.Repository
	id         string
	bundleRepo string
	up         transfer.Source
	cl         *claims
	wanted     []wantedRev
	errs       []error
}

// Pass runs one sync pass: it reads every repository's wanted revisions,
// then makes them complete in priority order (linkplan.Order: revisions
// the gate waits on, then the newest of each tracked ref, then the
// rollback set, then the rest; heavier repositories first within a tier),
// as far as the link policy allows, then applies retention. A revision
// that fails does not stop the others; the error joins every failure. The
// link policy stopping the pass is no error: PassResult.Waiting says so.
func (s *Syncer) Pass(ctx context.Context) (PassResult, error) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	s.now.Lock()
	var o linkplan.Override
	if s.now.o != nil {
		o = *s.now.o
	}
	s.now.o, s.now.pending = nil, false
	s.now.Unlock()
	s.status.mu.Lock()
	s.status.running = true
	s.status.mu.Unlock()
	defer func() {
		s.status.mu.Lock()
		s.status.running = false
		s.status.mu.Unlock()
	}()
	start := time.Now()
	pctx := s.gate.begin(ctx, o)
	var res PassResult
	var errs []error
	var passes []*repoPass
	var cands []linkplan.Candidate
	for i := range s.o.Config.Repositories {
		r := &s.o.Config.Repositories[i]
		if r.Bundles == "" {
			continue
		}
		rp, err := s.prepareRepo(ctx, r, &res)
		if err != nil {
			errs = append(errs, err)
		}
		if rp == nil { // not mirrored yet, or failed early
			continue
		}
		passes = append(passes, rp)
		for _, w := range rp.wanted {
			cands = append(cands, linkplan.Candidate{Repo: rp.id, Revision: w.sha, Tier: s.tier(rp.id, w), Weight: max(r.Weight, 1),
				Depth: w.depth, Index: len(cands)})
		}
		if ctx.Err() != nil {
			break
		}
	}
	linkplan.Order(cands)
	s.status.setOrder(cands)
	byID := map[string]*repoPass{}
	for _, rp := range passes {
		byID[rp.id] = rp
	}
	outOfOrder := map[string]bool{}
	lastIdx := map[string]int{}
	for _, c := range cands {
		rp := byID[c.Repo]
		if c.Index < lastIdx[c.Repo] {
			outOfOrder[c.Repo] = true
		}
		lastIdx[c.Repo] = c.Index
		if ctx.Err() != nil {
			break
		}
		if stop := s.gate.stopReason(); stop != nil || pctx.Err() != nil {
			// The link policy stopped the pass: what is complete stays
			// so; the rest waits.
			s.waitOrCheck(ctx, rp, c.Revision, &res)
			continue
		}
		st, err := s.syncRevision(pctx, rp.id, rp.bundleRepo, rp.up, c.Revision, rp.cl)
		switch {
		case err != nil && (isLinkStop(err) || isLinkStop(context.Cause(pctx))):
			s.markWaiting(rp.id, c.Revision, s.gate.stopReason())
			res.Waiting++
		case err != nil:
			res.Failed++
			rp.errs = append(rp.errs, fmt.Errorf("%s@%s: %w", rp.id, short(c.Revision), err))
		case st == StateComplete:
			res.Complete++
		case st == StateNoBundle:
			res.NoBundle++
		case st == StateWaiting:
			res.Waiting++
		}
	}
	if stop := s.gate.end(); stop != nil {
		res.LinkStop = stop.Error()
		res.LinkUntil = s.linkUntil()
		s.log.Info("sync: the link policy stopped the pass", "reason", stop, "waiting", res.Waiting)
	}
	for _, rp := range passes {
		// The remote bases' moving refs, by owner and in wanted order
		// (the fetch order above is the link plan's, not ownership).
		s.stateMu.Lock()
		s.claimRepoGitRefs(ctx, rp.cl, rp.cl.wanted, nil)
		s.stateMu.Unlock()
		if !s.o.DisableRetention && ctx.Err() == nil {
			s.stateMu.Lock()
			n, err := s.retain(ctx, rp.r.URL, rp.id, rp.bundleRepo, rp.wanted)
			s.stateMu.Unlock()
			res.Deleted += n
			if err != nil {
				rp.errs = append(rp.errs, fmt.Errorf("retention of %s: %w", rp.id, err))
			}
		}
		err := errors.Join(rp.errs...)
		s.status.passDone(rp.id, err)
		s.notify(rp.id)
		if err != nil {
			errs = append(errs, err)
		}
		if outOfOrder[rp.id] {
			// An older revision landed before a newer one and may have
			// taken its tags: the next pass claims them newest first.
			s.Kick()
		}
	}
	s.metrics.passes.Inc()
	s.metrics.passDuration.Observe(time.Since(start).Seconds())
	err := errors.Join(errs...)
	if err == nil && ctx.Err() == nil {
		s.metrics.lastSuccess.SetToCurrentTime()
	}
	if err == nil && ctx.Err() == nil && res.Done() {
		// Every wanted revision is complete: what is still staged belongs
		// to nothing wanted (a revision no longer tracked or kept, a blob
		// that reached the site another way, a bundle gone upstream).
		// Nothing else removes it; the pass lock keeps every copy out.
		if perr := transfer.PruneStaging(s.staging, 0); perr != nil {
			s.log.Warn("clear staging", "dir", s.staging, "err", perr)
		}
		if perr := os.RemoveAll(s.deltaLayout); perr != nil {
			s.log.Warn("clear deltas", "dir", s.deltaLayout, "err", perr)
		}
	}
	return res, err
}

// tier ranks a wanted revision for the fetch order.
func (s *Syncer) tier(id string, w wantedRev) linkplan.Tier {
	switch {
	case w.demanded, s.o.Waiting != nil && s.o.Waiting(id, w.sha):
		return linkplan.TierWaiting
	case w.tip:
		return linkplan.TierNewest
	case s.o.Deployed != nil && s.o.Deployed.IsDeployed(id, w.sha):
		return linkplan.TierRollback
	}
	return linkplan.TierRest
}

// linkUntil is when the link policy may next allow the link.
func (s *Syncer) linkUntil() time.Time {
	return s.plan.Decide(linkplan.Override{}).Until
}

// waitOrCheck handles a revision after the link policy stopped the pass:
// complete locally is complete; otherwise it waits.
func (s *Syncer) waitOrCheck(ctx context.Context, rp *repoPass, sha string, res *PassResult) {
	rep, err := bundle.CheckComplete(ctx, s.presence, layout(rp.bundleRepo, false), sha, s.platforms)
	if err == nil && rep.Complete() {
		rp.cl.markComplete(rep.Bundle)
		s.status.update(rp.id, sha, func(r *RevisionStatus) {
			r.State, r.Error, r.Missing = StateComplete, "", nil
			r.BytesDone, r.BytesTotal = rep.Bytes, rep.Bytes
		})
		res.Complete++
		return
	}
	s.markWaiting(rp.id, sha, s.gate.stopReason())
	res.Waiting++
}

func (s *Syncer) markWaiting(id, sha string, why error) {
	reason := "waiting for the link"
	if why != nil {
		reason = why.Error()
	}
	s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error, r.Rate = StateWaiting, reason, 0 })
}

// prepareRepo reads one repository's wanted revisions and claims the
// deployed revision's tags.
func (s *Syncer) prepareRepo(ctx context.Context, r *config.Repository, res *PassResult) (*repoPass, error) {
	id, err := imageref.RepoID(r.URL)
	if err != nil {
		return nil, err
	}
	wanted, err := s.wanted(ctx, r)
	if errors.Is(err, gitmirror.ErrNotReady) {
		s.status.passDone(id, nil)
		return nil, nil // nothing mirrored yet: nothing to want
	}
	if err != nil {
		s.status.passDone(id, err)
		return nil, err
	}
	wanted = s.addDemanded(ctx, id, r, wanted)
	s.status.setWanted(id, r.URL, r.Bundles, wanted)
	res.Wanted += len(wanted)
	bundleRepo, err := imageref.BundleRepository(r.URL)
	if err != nil {
		return nil, err
	}
	up, err := s.upstream(r.Bundles)
	if err != nil {
		s.status.passDone(id, err)
		return nil, err
	}
	// Tags claimed by newer revisions: an older revision does not move them
	// back (verify --activate does, for the revision being deployed). The
	// deployed revision claims its tags first, so a restarting pod of the
	// running version never pulls a newer image that was not deployed.
	rp := &repoPass{r: r, id: id, bundleRepo: bundleRepo, up: meteredSource{upstreamSource: up, gate: s.gate}, wanted: wanted,
		cl: &claims{id: id, bundleRepo: bundleRepo, keys: map[string]bool{}, tips: tipsOf(wanted), wanted: wanted}}
	s.stateMu.Lock()
	err = s.claimDeployed(ctx, rp.cl)
	s.stateMu.Unlock()
	if err != nil {
		rp.errs = append(rp.errs, err)
	}
	return rp, nil
}

type wantedRev struct {
	sha      string
	refs     []string
	tip      bool
	depth    int  // least distance from a tracked ref's tip
	demanded bool // outside the tracked history, wanted on demand (Options.Demanded)
}

// commitChecker is the mirror's commit lookup (gitmirror.Mirror.HasCommit).
type commitChecker interface {
	HasCommit(ctx context.Context, idOrURL, sha string) (bool, error)
}

// addDemanded appends to wanted the revisions Options.Demanded lists for
// repository id that the mirror holds as commits and wanted lacks.
func (s *Syncer) addDemanded(ctx context.Context, id string, r *config.Repository, wanted []wantedRev) []wantedRev {
	if s.o.Demanded == nil {
		return wanted
	}
	hc, ok := s.o.Mirror.(commitChecker)
	if !ok {
		return wanted
	}
	have := map[string]bool{}
	for _, w := range wanted {
		have[w.sha] = true
	}
	n := 0
	for _, sha := range s.o.Demanded(id) {
		if n == maxDemanded {
			break
		}
		if !bundle.IsRevision(sha) || have[sha] {
			continue
		}
		if ok, err := hc.HasCommit(ctx, r.URL, sha); err != nil || !ok {
			continue
		}
		have[sha] = true
		n++
		wanted = append(wanted, wantedRev{sha: sha, demanded: true, depth: r.KeepRevisions + 1})
	}
	return wanted
}

// wanted lists a repository's wanted revisions: each tracked ref's tip,
// then up to keepRevisions earlier first-parent revisions, newest first
// (all tips before any history).
func (s *Syncer) wanted(ctx context.Context, r *config.Repository) ([]wantedRev, error) {
	tips, err := s.o.Mirror.RefTips(ctx, r.URL)
	if err != nil {
		return nil, fmt.Errorf("refs of %s: %w", r.URL, err)
	}
	byName := map[string]string{}
	for _, t := range tips {
		c := t.Commit
		if c == "" {
			c = t.Object
		}
		byName[t.Name] = c
	}
	var histories [][]string
	var names []string
	for _, ref := range r.Track {
		tip, ok := byName[ref]
		if !ok {
			continue // not (yet) upstream: nothing to want
		}
		h, err := s.o.Mirror.FirstParents(ctx, r.URL, tip, r.KeepRevisions)
		if err != nil {
			return nil, err
		}
		histories = append(histories, h)
		names = append(names, ref)
	}
	idx := map[string]int{}
	var out []wantedRev
	for depth := 0; ; depth++ {
		more := false
		for i, h := range histories {
			if depth >= len(h) {
				continue
			}
			more = true
			sha := h[depth]
			if j, ok := idx[sha]; ok {
				out[j].refs = appendUnique(out[j].refs, names[i])
				out[j].tip = out[j].tip || depth == 0
				continue
			}
			idx[sha] = len(out)
			out = append(out, wantedRev{sha: sha, refs: []string{names[i]}, tip: depth == 0, depth: depth})
		}
		if !more {
			return out, nil
		}
	}
}

func appendUnique(xs []string, s string) []string {
	for _, x := range xs {
		if x == s {
			return xs
		}
	}
	return append(xs, s)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// upstream returns the bundles repository as a copy source, with the
// credentials and transport the edge config gives its registry. The same
// *Remote serves later passes while the credentials read are the same: it
// keeps its authenticated transports, so a pass does not pay the ping and
// token round trips again.
func (s *Syncer) upstream(repo string) (*registryclient.Remote, error) {
	host, _, _ := strings.Cut(repo, "/")
	opts := []registryclient.Option{registryclient.WithTransport(s.o.UpstreamTransport), registryclient.WithIdleTimeout(30 * time.Second)}
	key := repo
	if u, ok := s.o.Config.UpstreamRegistries[host]; ok {
		opts = append(opts, registryclient.WithInsecure(u.Insecure))
		if u.UsernameFile != "" {
			user, err := readSecret(u.UsernameFile)
			if err != nil {
				return nil, err
			}
			pass, err := readSecret(u.PasswordFile)
			if err != nil {
				return nil, err
			}
			opts = append(opts, registryclient.WithAuth(&authn.Basic{Username: user, Password: pass}))
			key += "\x00" + user + "\x00" + pass
		}
	}
	s.upstreams.Lock()
	defer s.upstreams.Unlock()
	if r, ok := s.upstreams.m[key]; ok {
		return r, nil
	}
	r, err := registryclient.New(repo, opts...)
	if err != nil {
		return nil, err
	}
	if s.upstreams.m == nil || len(s.upstreams.m) >= 64 {
		s.upstreams.m = map[string]*registryclient.Remote{}
	}
	s.upstreams.m[key] = r
	return r, nil
}

func readSecret(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (s *Syncer) local(repo string) (*registryclient.Remote, error) {
	// WithMountAnywhere: the edge registry links a blob it holds under any
	// repository, so only blobs missing on site cross the link.
	return registryclient.New(localHost+"/"+repo, registryclient.WithInsecure(true), registryclient.WithTransport(s.o.Local.Transport()),
		registryclient.WithKeychain(authn.NewMultiKeychain()), registryclient.WithMountAnywhere(true))
}

// layout is where a bundle's parts live in the edge registry.
func layout(bundleRepo string, tags bool) bundle.Placement {
	return bundle.Placement{
		BundleRepo: bundleRepo,
		ImageRepo:  func(r imageref.Ref) string { return r.EdgeRepository() },
		CheckTags:  tags,
	}
}

// Check reports how complete revision sha of repository id is in the edge
// registry, by the one definition of complete (tags included).
func (s *Syncer) Check(ctx context.Context, repoURL, sha string) (*bundle.Report, error) {
	br, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return nil, err
	}
	return bundle.CheckComplete(ctx, s.presence, layout(br, true), sha, s.platforms)
}

// BundleComplete reports whether revision sha's bundle is complete in the
// edge registry as sync judges it (image tags aside: verify --activate
// re-points those): what the readiness gate may advertise.
func (s *Syncer) BundleComplete(ctx context.Context, repoURL, sha string) (bool, error) {
	br, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return false, err
	}
	rep, err := bundle.CheckComplete(ctx, s.presence, layout(br, false), sha, s.platforms)
	if err != nil || !rep.Complete() {
		return false, err
	}
	if err := s.trustLocal(ctx, br, rep.Bundle, rep.Index); err != nil {
		if IsUntrusted(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (s *Syncer) notify(id string) {
	if s.o.Notify != nil {
		s.o.Notify(id)
	}
}

// syncRevision makes revision sha's bundle complete locally.
func (s *Syncer) syncRevision(ctx context.Context, id, bundleRepo string, up transfer.Source, sha string, cl *claims) (string, error) {
	rep, err := bundle.CheckComplete(ctx, s.presence, layout(bundleRepo, false), sha, s.platforms)
	if err != nil {
		s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateFailed, err.Error() })
		return StateFailed, fmt.Errorf("check local bundle: %w", err)
	}
	if rep.Complete() {
		if err := s.trustLocal(ctx, bundleRepo, rep.Bundle, rep.Index); err != nil {
			if IsUntrusted(err) {
				s.markUntrusted(id, sha, err)
				return StateUntrusted, err
			}
			s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateFailed, err.Error() })
			return StateFailed, err
		}
		s.needGitDeps(ctx, id, sha, rep.Bundle)
		s.stateMu.Lock()
		err := s.claimDeployed(ctx, cl)
		if err == nil {
			err = s.claimTags(ctx, rep.Bundle, cl.keys)
		}
		cl.markComplete(rep.Bundle)
		s.stateMu.Unlock()
		if err != nil {
			return StateFailed, err
		}
		was := ""
		s.status.update(id, sha, func(r *RevisionStatus) {
			was = r.State
			r.State, r.Error, r.Missing = StateComplete, "", nil
			r.Images, r.Charts = entries(rep.Bundle)
			r.BytesDone, r.BytesTotal, r.Rate, r.ETASeconds = rep.Bytes, rep.Bytes, 0, 0
		})
		if was != StateComplete {
			s.notify(id)
		}
		return StateComplete, nil
	}

	// Not complete: the link is needed from here on.
	if _, err := s.gate.decide(); err != nil {
		s.markWaiting(id, sha, err)
		return StateWaiting, nil
	}
	// The source blobs come from: with deltas made on site where they
	// apply. Its delta index is read beside the bundle index (two requests
	// at once, not one round trip after the other before the first blob),
	// except while upstream had no bundle for the revision at the last
	// look: a revision polled until CI pushes its bundle costs one request
	// per poll, and the delta index is then read when the first blob needs
	// it.
	src, cleanup := s.withDeltas(ctx, up, id, sha, bundleRepo)
	defer cleanup()
	if ds, ok := src.(*deltaSource); ok && s.status.state(id, sha) != StateNoBundle {
		ds.prefetch(ctx)
	}
	// Read the bundle index upstream, through the engine's retry layer
	// (the only one; "not found" is permanent there), in one round trip
	// (GET by tag; no HEAD first).
	root, raw, err := s.engine.ResolveManifest(ctx, up, sha)
	if errors.Is(err, transfer.ErrNotFound) {
		s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateNoBundle, "" })
		s.log.Debug("no bundle upstream yet", "repo", id, "revision", sha)
		return StateNoBundle, nil
	}
	if err != nil {
		s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateFailed, err.Error() })
		return StateFailed, fmt.Errorf("read bundle index %s:%s: %w", up, sha, err)
	}
	if err := oci.VerifyBytes(raw, root); err != nil {
		s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateFailed, err.Error() })
		return StateFailed, fmt.Errorf("bundle index %s:%s: %w", up, sha, err)
	}
	b, err := bundle.Parse(raw)
	if err == nil && b.Revision != sha {
		err = fmt.Errorf("records revision %s", b.Revision)
	}
	if err != nil {
		s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateFailed, err.Error() })
		return StateFailed, fmt.Errorf("bundle index %s:%s: %w", up, sha, err)
	}

	missing := s.entriesNotLocal(ctx, b)
	if len(missing) == 0 {
		// Every entry's manifest is here: name what the check found (a
		// blob under one, a tag) instead.
		for i, m := range rep.Missing {
			if i == maxNamedMissing {
				missing = append(missing, fmt.Sprintf("… %d more", len(rep.Missing)-maxNamedMissing))
				break
			}
			missing = append(missing, m.String())
		}
	}
	s.status.update(id, sha, func(r *RevisionStatus) {
		r.State, r.Error, r.Missing = StateSyncing, "", missing
		r.Images, r.Charts = entries(b)
	})
	k := bundle.CountKinds(b.Images)
	s.log.Info("syncing bundle", "repo", id, "revision", sha, "images", k.Images, "charts", k.Charts, "attached", k.Attached, "missing", len(rep.Missing))

	s.beginRevision(id, sha)
	st, err := s.Land(ctx, Landing{Src: src, BundleRepo: bundleRepo, Bundle: b, Root: root, Raw: raw, Recheck: recheckImages(rep), claims: cl,
		// Its git dependencies go to the mirror only once the trust
		// policy has passed the index that names them.
		trusted: func() { s.needGitDeps(ctx, id, sha, b) }})
	s.endRevision()
	s.metrics.blobsCopied.Add(float64(st.BlobsCopied))
	if IsUntrusted(err) {
		s.markUntrusted(id, sha, err)
		return StateUntrusted, err
	}
	if err != nil {
		s.status.update(id, sha, func(r *RevisionStatus) { r.State, r.Error = StateFailed, err.Error() })
		return StateFailed, err
	}
	// A new complete revision may own its remote bases' moving refs:
	// pointed before the gate can advertise it.
	s.stateMu.Lock()
	s.claimRepoGitRefs(ctx, cl, cl.wanted, nil)
	s.stateMu.Unlock()
	s.status.update(id, sha, func(r *RevisionStatus) {
		r.State, r.Error, r.Missing, r.Rate, r.ETASeconds = StateComplete, "", nil, 0, 0
		r.BytesDone = r.BytesTotal
	})
	s.notify(id)
	// bytesRead: over the link (layers made from deltas count as their
	// patches).
	s.log.Info("bundle complete", "repo", id, "revision", sha, "bytesRead", linkBytes(src, st), "blobsCopied", st.BlobsCopied, "blobsSkipped", st.BlobsSkipped, "retries", st.Retries,
		"hintsFetched", st.HintsFetched, "hintsUnused", st.HintsUnused)
	return StateComplete, nil
}

// claimTags marks the tags of a complete revision's images as taken, and
// points each one not claimed by a newer revision at this revision's digest.
// Which tags to claim is decided in order; the tags are then checked and
// written at once (each is a round trip to the edge registry, all of them
// before the bundle index).
func (s *Syncer) claimTags(ctx context.Context, b *bundle.Bundle, claimed map[string]bool) error {
	var todo []bundle.Image
	for _, im := range b.Images {
		if im.Ref.Tag == "" {
			continue
		}
		key := tagKey(im)
		if claimed[key] {
			continue
		}
		claimed[key] = true
		todo = append(todo, im)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(claimConcurrency)
	for _, im := range todo {
		g.Go(func() error {
			dst, err := s.local(im.Ref.EdgeRepository())
			if err != nil {
				return err
			}
			cur, err := dst.ResolveTag(gctx, im.Ref.Tag)
			if err == nil && cur.Digest == im.Descriptor.Digest {
				return nil
			}
			if err != nil && !errors.Is(err, transfer.ErrNotFound) {
				return fmt.Errorf("tag %s: %w", tagKey(im), err)
			}
			return s.writeTag(gctx, tagWrite{dst: dst, d: im.Descriptor, tag: im.Ref.Tag})
		})
	}
	return g.Wait()
}

// claimConcurrency bounds the tag checks and writes of claimTags.
const claimConcurrency = 16

type tagWrite struct {
	dst *registryclient.Remote
	d   v1.Descriptor
	tag string
}

// writeTag points tw.tag at tw.d, whose manifest is already local.
func (s *Syncer) writeTag(ctx context.Context, tw tagWrite) error {
	raw, err := tw.dst.FetchManifest(ctx, tw.d)
	if err != nil {
		return fmt.Errorf("tag %s:%s: %w", tw.dst, tw.tag, err)
	}
	if err := oci.VerifyBytes(raw, tw.d); err != nil {
		return fmt.Errorf("tag %s:%s: %w", tw.dst, tw.tag, err)
	}
	if err := tw.dst.WriteManifest(ctx, tw.d, raw, tw.tag); err != nil {
		return fmt.Errorf("tag %s:%s: %w", tw.dst, tw.tag, err)
	}
	return nil
}

func (s *Syncer) beginRevision(repo, sha string) {
	s.current.Lock()
	defer s.current.Unlock()
	s.current.repo, s.current.sha, s.current.started, s.current.hinted = repo, sha, time.Now(), 0
}

// setHinted records n, the bytes of the blobs the current revision's
// bundle index hints and the site lacks, as its total so far: hinted
// blobs are fetched before any manifest is walked, and a pass the budget
// stops before the walks would otherwise leave the revision's size (and
// so its forecast) unknown while its bytes were read.
func (s *Syncer) setHinted(n int64) {
	s.current.Lock()
	repo, sha := s.current.repo, s.current.sha
	if sha != "" {
		s.current.hinted = n
	}
	s.current.Unlock()
	if sha == "" || n <= 0 {
		return
	}
	s.status.update(repo, sha, func(r *RevisionStatus) { r.BytesTotal = max(r.BytesTotal, n) })
}

func (s *Syncer) endRevision() {
	s.current.Lock()
	defer s.current.Unlock()
	s.current.repo, s.current.sha = "", ""
}

// onProgress receives the engine's events from its goroutines.
func (s *Syncer) onProgress(ev transfer.Event) {
	if ev.Kind == transfer.Retrying {
		s.metrics.retries.Inc()
		return
	}
	if ev.Kind == transfer.ManifestDone {
		return // no byte counts (zero): it would reset the revision's bytes
	}
	s.current.Lock()
	repo, sha, started, hinted := s.current.repo, s.current.sha, s.current.started, s.current.hinted
	s.current.Unlock()
	if sha == "" {
		return
	}
	elapsed := time.Since(started).Seconds()
	s.status.update(repo, sha, func(r *RevisionStatus) {
		r.BytesDone, r.BytesTotal = ev.Done, max(ev.Total, hinted)
		if elapsed > 0.5 && ev.Done > 0 {
			r.Rate = float64(ev.Done) / elapsed
			if r.Rate > 0 {
				r.ETASeconds = float64(max(r.BytesTotal-ev.Done, 0)) / r.Rate
			}
		}
	})
}

// countLink adds n bytes read from upstream.
func (s *Syncer) countLink(n int64) {
	s.metrics.linkBytes.Add(float64(n))
	s.status.mu.Lock()
	s.status.link += n
	s.status.mu.Unlock()
}

// LinkBytes is the number of bytes read from upstream registries so far.
func (s *Syncer) LinkBytes() int64 {
	s.status.mu.Lock()
	defer s.status.mu.Unlock()
	return s.status.link
}
