package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/time/rate"

	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// ErrWindowClosed stops link use when no transfer window is open (and no
// manual "sync now" overrides it).
var ErrWindowClosed = errors.New("link: no transfer window open")

// ErrBudgetSpent stops link use when the budget of a period is spent.
var ErrBudgetSpent = errors.New("link: budget spent")

// isLinkStop reports an error that is the link policy stopping a pass, not
// a failure.
func isLinkStop(err error) bool {
	return errors.Is(err, ErrWindowClosed) || errors.Is(err, ErrBudgetSpent)
}

// linkGate applies the link policy (internal/linkplan) to every byte sync
// reads from upstream: it decides whether a pass may use the link, caps
// the rate with the open window's cap, charges what crosses to the budget
// ledger, and cuts each blob read exactly where the budget ends.
//
// The budget rule (docs/configuration.md): a blob read is granted what
// the budget has left after the reads already granted; when the grant is
// short of the blob, the request asks upstream for the granted range only
// (HTTP Range), so not one byte past the budget crosses the link, and the
// blob stops there; its bytes stay staged and the next period resumes it
// from that offset. Manifests are read only while budget is left and may
// pass it by their own size (a few KiB; at most 4 MiB).
type linkGate struct {
	plan    *linkplan.Plan
	limiter *rate.Limiter

	mu          sync.Mutex
	cond        *sync.Cond
	outstanding int64 // bytes granted to reads (blobs, manifests), not yet read
	active      int   // reads holding a grant (granted, not closed)
	parked      int   // blob reads that saw the window close, waiting for the others
	atBudget    int   // blob reads at the end of a short grant, waiting for the others
	override    linkplan.Override
	cancel      context.CancelCauseFunc // the running pass's
	cap         int64                   // the limiter's current cap; 0: none
	stopped     error                   // why the running pass stopped
	// state is the schedule's state from stateAt until state.Until:
	// reads ask for it every few KiB, the schedule is worked out once.
	state   linkplan.State
	stateAt time.Time
	// measured link rate: bytes and busy time over the recent past.
	rateBytes int64
	rateStart time.Time
	rateLast  time.Time
	rate      float64
}

func newLinkGate(p *linkplan.Plan) *linkGate {
	g := &linkGate{plan: p, limiter: rate.NewLimiter(rate.Inf, 256<<10)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// begin starts a pass with override o.
func (g *linkGate) begin(ctx context.Context, o linkplan.Override) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	g.mu.Lock()
	g.override, g.cancel, g.stopped, g.parked = o, cancel, nil, 0
	g.mu.Unlock()
	return ctx
}

// end closes the pass and returns why it stopped early (nil: it did not).
func (g *linkGate) end() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel != nil {
		g.cancel(nil)
	}
	g.cancel, g.override = nil, linkplan.Override{}
	if g.plan.Ledger != nil {
		_ = g.plan.Ledger.Flush()
	}
	return g.stopped
}

// decide applies the policy now and sets the rate cap; when the link may
// not be used it stops the running pass with the reason.
func (g *linkGate) decide() (linkplan.Decision, error) {
	g.mu.Lock()
	o := g.override
	g.mu.Unlock()
	d := g.plan.Decide(o)
	if !d.OK {
		err := ErrWindowClosed
		if d.Reason == "budget spent" {
			err = ErrBudgetSpent
		}
		if !d.Until.IsZero() {
			err = fmt.Errorf("%w until %s", err, d.Until.UTC().Format(time.RFC3339))
		}
		g.stop(err)
		return d, err
	}
	g.setCap(d.Rate)
	return d, nil
}

// windowOpen checks the schedule only (reads in flight hold a budget
// grant, or are manifests admitted while budget was left), sets the rate
// cap, and stops the pass when the window has closed.
func (g *linkGate) windowOpen() error {
	now := g.plan.Clock.Now()
	g.mu.Lock()
	o := g.override
	st := g.state
	if g.stateAt.IsZero() || now.Before(g.stateAt) || (!st.Until.IsZero() && !now.Before(st.Until)) {
		st = g.plan.Schedule.At(now)
		g.state, g.stateAt = st, now
	}
	g.mu.Unlock()
	if !st.Open && !o.Window {
		err := fmt.Errorf("%w until %s", ErrWindowClosed, st.Until.UTC().Format(time.RFC3339))
		g.stop(err)
		return err
	}
	if st.Open {
		g.setCap(st.Rate)
	} else {
		g.setCap(g.plan.Schedule.LinkRate())
	}
	return nil
}

// stopReason is why the running pass stopped (nil: it did not).
func (g *linkGate) stopReason() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// stop records why the pass stops: the pass starts no further revision.
// It does not cancel the pass: the read that stops returns a permanent
// error, and the copy engine ends its copy; blob reads still under way
// were waited for (budget) or stop on their next read (window).
func (g *linkGate) stop(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped == nil {
		g.stopped = err
	}
	g.cond.Broadcast()
}

func (g *linkGate) setCap(bps int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if bps == g.cap {
		return
	}
	g.cap = bps
	if bps <= 0 {
		g.limiter.SetLimit(rate.Inf)
		return
	}
	g.limiter.SetBurst(int(min(bps, 256<<10)))
	g.limiter.SetLimit(rate.Limit(bps))
}

// charge records n bytes read from upstream.
func (g *linkGate) charge(n int64) {
	now := time.Now() // measurement, not policy: the real rate of the link
	g.mu.Lock()
	if g.rateLast.IsZero() || now.Sub(g.rateLast) > 5*time.Second {
		g.rateBytes, g.rateStart = 0, now // idle in between: a new busy stretch
	}
	g.rateBytes += n
	g.rateLast = now
	if el := now.Sub(g.rateStart).Seconds(); el >= 1 {
		g.rate = float64(g.rateBytes) / el
		if el > 60 { // keep the last minute or so
			g.rateBytes, g.rateStart = int64(g.rate*30), now.Add(-30*time.Second)
		}
	}
	g.mu.Unlock()
	_ = g.plan.Charge(n)
}

// measuredRate is the link's recent rate in bytes/s (0: not measured yet).
func (g *linkGate) measuredRate() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rate
}

// grant reserves up to need bytes of budget for a blob read: need itself
// when the budget allows (or there is none), else what is left; while
// other reads hold the rest, it waits for them. It returns
// ErrBudgetSpent when nothing is left.
func (g *linkGate) grant(ctx context.Context, need int64) (int64, error) {
	stop := context.AfterFunc(ctx, func() { g.mu.Lock(); g.cond.Broadcast(); g.mu.Unlock() })
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		left, limited := g.plan.BudgetLeft()
		if g.override.Budget || !limited {
			g.outstanding += need
			g.active++
			return need, nil
		}
		if avail := left - g.outstanding; avail > 0 {
			n := min(need, avail)
			g.outstanding += n
			g.active++
			return n, nil
		}
		if g.outstanding == 0 && g.active == 0 {
			// Spent, and no read is still open: stopping now cuts none.
			return 0, ErrBudgetSpent
		}
		if err := context.Cause(ctx); err != nil {
			return 0, err
		}
		g.cond.Wait()
	}
}

// release returns n granted bytes (read, or never to be read).
func (g *linkGate) release(n int64) {
	g.mu.Lock()
	g.outstanding -= n
	g.cond.Broadcast()
	g.mu.Unlock()
}

// parkClosed is where a blob read that saw the window close waits until
// every open blob read has seen it too, so they all stop together: the
// copy engine ends the copy at the first error, and a read stopped between
// two of its writes would race with it. A read waiting at the budget
// (waitAlone) has stopped too: it is not waited for, and it waits for the
// parked reads to close.
func (g *linkGate) parkClosed(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { g.mu.Lock(); g.cond.Broadcast(); g.mu.Unlock() })
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.parked++
	g.cond.Broadcast()
	for g.parked+g.atBudget < g.active && ctx.Err() == nil {
		g.cond.Wait()
	}
}

// closed ends one blob read.
func (g *linkGate) closed() {
	g.mu.Lock()
	g.active--
	g.cond.Broadcast()
	g.mu.Unlock()
}

// spent stops the pass at the budget once every other read is done (none
// is cut with bytes in flight), and returns the error that ends the read.
func (g *linkGate) spent(ctx context.Context) error {
	g.waitAlone(ctx)
	g.stop(ErrBudgetSpent)
	return oci.Permanent(ErrBudgetSpent)
}

// grantRead is grant for a read about to start: a spent budget stops the
// pass, and every refusal is permanent for the copy engine.
func (g *linkGate) grantRead(ctx context.Context, need int64) (int64, error) {
	n, err := g.grant(ctx, need)
	if err != nil {
		if errors.Is(err, ErrBudgetSpent) {
			g.stop(err)
		}
		return 0, oci.Permanent(err)
	}
	return n, nil
}

// waitAlone waits until every other open blob read has finished (written
// and closed) or waits here too: the read that ends at the budget stops
// the copy only then, so none is cut with bytes in flight. More than one
// read can end at the budget: a manifest's bytes are charged before its
// grant is released, so a grant made meanwhile falls short and the next
// takes the rest; a read cut midway gives back what it did not read, and
// a waiting read takes that short while another short read is open. Those
// stop together rather than wait for each other.
func (g *linkGate) waitAlone(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { g.mu.Lock(); g.cond.Broadcast(); g.mu.Unlock() })
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.atBudget++
	g.cond.Broadcast()
	for g.active > g.atBudget && ctx.Err() == nil {
		g.cond.Wait()
	}
	g.atBudget--
}

// rangeEndKey carries, in a blob request's context, the last byte the
// budget allows: meteredTransport narrows the request's Range to it.
type rangeEndKey struct{}

// meteredTransport is the link as sync sees it: every response body read
// waits for the rate cap, is counted and charged, and stops when the
// policy closes the link.
type meteredTransport struct {
	next  http.RoundTripper
	gate  *linkGate
	count func(int64)
}

func (t meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if end, ok := req.Context().Value(rangeEndKey{}).(int64); ok && strings.Contains(req.URL.Path, "/blobs/") {
		req = req.Clone(req.Context())
		start := int64(0)
		if r := req.Header.Get("Range"); r != "" {
			a, b, ok := parseRange(r)
			if !ok {
				return nil, fmt.Errorf("link: unexpected Range %q", r)
			}
			start, end = a, min(b, end)
		}
		req.Header.Set("Range", "bytes="+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &meteredBody{ReadCloser: resp.Body, t: t, ctx: req.Context()}
	return resp, nil
}

// parseRange parses "bytes=a-b".
func parseRange(s string) (int64, int64, bool) {
	r, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return 0, 0, false
	}
	as, bs, ok := strings.Cut(r, "-")
	a, err1 := strconv.ParseInt(as, 10, 64)
	b, err2 := strconv.ParseInt(bs, 10, 64)
	return a, b, ok && err1 == nil && err2 == nil && a <= b
}

type meteredBody struct {
	io.ReadCloser
	t   meteredTransport
	ctx context.Context
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if err := b.t.gate.windowOpen(); err != nil {
		return 0, oci.Permanent(err)
	}
	l := b.t.gate.limiter
	if l.Limit() != rate.Inf {
		if len(p) > l.Burst() {
			p = p[:l.Burst()]
		}
		if err := l.WaitN(b.ctx, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.t.count(int64(n))
		b.t.gate.charge(int64(n))
	}
	return n, err
}

// meteredSource is the upstream bundles repository behind the link
// policy: every read asks the gate first, and blob reads hold a grant of
// the budget.
type meteredSource struct {
	upstreamSource
	gate *linkGate
}

// upstreamSource is what an upstream bundles repository's client offers the
// copy engine: a Source that also reads a tag in one round trip.
type upstreamSource interface {
	transfer.Source
	transfer.RefFetcher
}

// String names the upstream repository as the wrapped source does
// (registryclient.Remote: "host/repo"), for errors and logs: without it,
// fmt would print the struct, the gate's lock included, while other reads
// hold it.
func (m meteredSource) String() string {
	if s, ok := m.upstreamSource.(fmt.Stringer); ok {
		return s.String()
	}
	l := m.Location()
	return l.Registry + "/" + l.Repository
}

// Location keeps the source's location visible to the engine.
func (m meteredSource) Location() oci.Location {
	if l, ok := m.upstreamSource.(transfer.Located); ok {
		return l.Location()
	}
	return oci.Location{}
}

func (m meteredSource) Resolve(ctx context.Context, ref string) (v1.Descriptor, error) {
	if _, err := m.gate.decide(); err != nil {
		return v1.Descriptor{}, oci.Permanent(err)
	}
	return m.upstreamSource.Resolve(ctx, ref)
}

// FetchRef passes the source's one-round-trip tag read through
// (transfer.RefFetcher), so the link policy costs no extra HEAD.
func (m meteredSource) FetchRef(ctx context.Context, ref string) (v1.Descriptor, []byte, error) {
	if _, err := m.gate.decide(); err != nil {
		return v1.Descriptor{}, nil, oci.Permanent(err)
	}
	return m.upstreamSource.FetchRef(ctx, ref)
}

// FetchManifest reads a manifest whole, within a grant of its size like a
// blob read: blob reads under way (hinted blobs start before any manifest
// is read) cannot take the budget a manifest needs, and a manifest the
// budget cannot hold stops the pass before its first byte.
func (m meteredSource) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if _, err := m.gate.decide(); err != nil {
		return nil, oci.Permanent(err)
	}
	if d.Size <= 0 {
		return m.upstreamSource.FetchManifest(ctx, d)
	}
	n, err := m.gate.grantRead(ctx, d.Size)
	if err != nil {
		return nil, err
	}
	if n < d.Size {
		// Not enough for the whole manifest: stop as a blob read at the
		// budget does.
		m.gate.release(n)
		err := m.gate.spent(ctx)
		m.gate.closed()
		return nil, err
	}
	defer func() {
		m.gate.release(n)
		m.gate.closed()
	}()
	return m.upstreamSource.FetchManifest(ctx, d)
}

func (m meteredSource) OpenBlob(ctx context.Context, d v1.Descriptor, offset int64) (io.ReadCloser, error) {
	if _, err := m.gate.decide(); err != nil {
		return nil, oci.Permanent(err)
	}
	need := d.Size - offset
	if need <= 0 {
		return m.upstreamSource.OpenBlob(ctx, d, offset)
	}
	n, err := m.gate.grantRead(ctx, need)
	if err != nil {
		return nil, err
	}
	octx := ctx
	if n < need {
		octx = context.WithValue(ctx, rangeEndKey{}, offset+n-1)
	}
	rc, err := m.upstreamSource.OpenBlob(octx, d, offset)
	if err != nil {
		m.gate.release(n)
		m.gate.closed()
		return nil, err
	}
	return newGrantedBody(rc, m.gate, ctx, n, n < need), nil
}

// grantedBody reads a blob within its grant. Close may come from another
// goroutine while a Read is under way: left is atomic, and whichever of
// the two takes bytes off it returns them to the gate.
type grantedBody struct {
	rc    io.ReadCloser
	gate  *linkGate
	ctx   context.Context
	left  atomic.Int64 // granted bytes not yet read
	short bool         // the grant ends before the blob
}

func newGrantedBody(rc io.ReadCloser, g *linkGate, ctx context.Context, n int64, short bool) *grantedBody {
	b := &grantedBody{rc: rc, gate: g, ctx: ctx, short: short}
	b.left.Store(n)
	return b
}

func (b *grantedBody) Read(p []byte) (int, error) {
	if err := b.gate.windowOpen(); err != nil {
		b.gate.parkClosed(b.ctx)
		return 0, oci.Permanent(err)
	}
	left := b.left.Load()
	if left <= 0 {
		if b.short {
			return 0, b.gate.spent(b.ctx)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.rc.Read(p)
	for n > 0 {
		cur := b.left.Load()
		if cur <= 0 {
			break // closed meanwhile: Close returned the grant
		}
		if b.left.CompareAndSwap(cur, cur-int64(n)) {
			b.gate.release(int64(n))
			break
		}
	}
	if b.left.Load() <= 0 && b.short && (err == nil || err == io.EOF) {
		if n > 0 {
			return n, nil // the bytes first; the stop on the next read
		}
		return 0, b.gate.spent(b.ctx)
	}
	// A whole grant read is a finished read for the gate, whenever its
	// body is closed: a hinted blob read to its end stays open until a
	// walk claims it, and a read stopping at the budget (spent) or a
	// manifest waiting for budget must not wait for that.
	if !b.short && b.left.CompareAndSwap(0, -1) {
		b.gate.closed()
	}
	return n, err
}

func (b *grantedBody) Close() error {
	if r := b.left.Swap(-1); r >= 0 {
		if r > 0 {
			b.gate.release(r)
		}
		b.gate.closed()
	}
	return b.rc.Close()
}
