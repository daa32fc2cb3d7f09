package syncer

import (
	"sort"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/linkplan"
)

// Revision states, as the API and status page show them.
const (
	StatePending  = "pending"   // wanted, not looked at yet
	StateComplete = "complete"  // every manifest and blob is in the edge registry
	StateSyncing  = "syncing"   // being copied now
	StateNoBundle = "no-bundle" // upstream has no bundle for it (yet)
	StateFailed   = "failed"    // the last attempt failed; retried next pass
	StateWaiting  = "waiting"   // the link policy holds it: no window open, or the budget spent
)

// RevisionStatus is what sync knows about one wanted revision.
type RevisionStatus struct {
	Revision string   `json:"revision"`
	Refs     []string `json:"refs,omitempty"` // tracked refs whose tip or history it is
	Tip      bool     `json:"tip"`            // the tip of a tracked ref
	State    string   `json:"state"`
	Images   int      `json:"images,omitempty"` // image entries of its bundle, charts not counted
	// Charts lists the bundle's Helm charts and OCI sources, apart from
	// its images.
	Charts     []ChartStatus `json:"charts,omitempty"`
	BytesDone  int64         `json:"bytesDone"`
	BytesTotal int64         `json:"bytesTotal"`
	Rate       float64       `json:"rate,omitempty"`       // bytes/s over the link, while syncing
	ETASeconds float64       `json:"etaSeconds,omitempty"` // until CompleteBy (forecast), or while syncing
	// Priority is the revision's fetch tier (linkplan.Tier: waiting,
	// newest, rollback, rest) and Queue its 1-based place in the fetch
	// order of the last pass.
	Priority string `json:"priority,omitempty"`
	Queue    int    `json:"queue,omitempty"`
	// CompleteBy is the forecast of when the revision will be complete,
	// from its missing bytes, those ahead of it, the measured rate, the
	// windows and the budget; absent when complete or unknown (its size
	// not known yet, or no rate).
	CompleteBy *time.Time `json:"completeBy,omitempty"`
	// SizeKnownAt, for a revision whose bundle index was never read (its
	// missing bytes unknown) while the link may not be used, is when the
	// index can next be read: the next window's opening or the budget's
	// refill. Absent while the link may be used (the next pass reads it).
	SizeKnownAt *time.Time `json:"sizeKnownAt,omitempty"`
	// ForecastNote says why CompleteBy is absent for a revision not
	// complete: its size is unknown until its index is read, it queues
	// behind one whose size is, or no rate is known yet.
	ForecastNote string `json:"forecastNote,omitempty"`
	// DeltaLayers counts the revision's layers made on site from
	// sub-layer deltas by this process, and DeltaSavedBytes what they
	// saved over the link: the layers' compressed bytes less their
	// patches and delta manifests.
	DeltaLayers     int       `json:"deltaLayers,omitempty"`
	DeltaSavedBytes int64     `json:"deltaSavedBytes,omitempty"`
	Error           string    `json:"error,omitempty"`
	Missing         []string  `json:"missing,omitempty"` // a few of what is not yet local
	UpdatedAt       time.Time `json:"updatedAt"`
}

// ChartStatus is one Helm chart or Argo CD OCI source of a revision's
// bundle (bundle.Chart).
type ChartStatus struct {
	Name    string `json:"name"`            // as reports name it: "chart cert-manager 1.15.0 from https://…"
	RepoURL string `json:"repoURL"`         // as the Application names it
	Chart   string `json:"chart,omitempty"` // empty for an OCI source
	Version string `json:"version"`         // exact version, or the OCI source's tag or digest
	Ref     string `json:"ref"`             // where the edge registry holds it
}

// entries counts b's images and lists its charts and OCI sources.
func entries(b *bundle.Bundle) (images int, charts []ChartStatus) {
	for _, im := range b.Images {
		if im.Attached != nil {
			continue
		}
		if im.Chart == nil {
			images++
			continue
		}
		charts = append(charts, ChartStatus{Name: im.Name(), RepoURL: im.Chart.RepoURL, Chart: im.Chart.Name, Version: im.Chart.Version, Ref: im.Ref.String()})
	}
	return images, charts
}

// Percent is how much of the bundle is local, 0 to 100.
func (r RevisionStatus) Percent() float64 {
	if r.State == StateComplete {
		return 100
	}
	if r.BytesTotal <= 0 {
		return 0
	}
	return 100 * float64(r.BytesDone) / float64(r.BytesTotal)
}

// RepoStatus is sync's view of one repository.
type RepoStatus struct {
	Repo      string           `json:"repo"` // repository id, <host>/<path>
	URL       string           `json:"url"`
	Bundles   string           `json:"bundles"`
	Revisions []RevisionStatus `json:"revisions"` // wanted revisions, newest tips first
	LastPass  *time.Time       `json:"lastPass,omitempty"`
	LastError string           `json:"lastError,omitempty"`
}

// Status is the whole of sync's state.
type Status struct {
	Running        bool         `json:"running"`
	Platforms      []string     `json:"platforms"`
	Repos          []RepoStatus `json:"repos"`
	LinkBytesTotal int64        `json:"linkBytesTotal"` // bytes read from upstream since start
	Link           LinkStatus   `json:"link"`
}

// LinkStatus is the link policy's state: windows, cap, budget.
type LinkStatus struct {
	Always bool `json:"always"` // no windows: the link may always be used
	Open   bool `json:"open"`   // a window is open now (or always)
	// RateCap is the cap in bytes/s now (0: none).
	RateCap int64 `json:"rateCap,omitempty"`
	// Until is when Open or RateCap next changes.
	Until *time.Time `json:"until,omitempty"`
	// NextWindow is when the next window opens (after the open one closes).
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	// Budget lists each limited period: limit, used, left, reset time.
	Budget []linkplan.Usage `json:"budget,omitempty"`
	// MeasuredRate is the link's recent rate in bytes/s.
	MeasuredRate   float64 `json:"measuredRate,omitempty"`
	GitPollAllowed bool    `json:"gitPollAllowed"`
	// Stopped says why sync waits for the link, when it does.
	Stopped        string `json:"stopped,omitempty"`
	SyncNowPending bool   `json:"syncNowPending,omitempty"`
}

// tracker holds the status behind a lock; progress events update it from
// the copying goroutines.
type tracker struct {
	mu      sync.Mutex
	repos   map[string]*RepoStatus
	ids     []string
	running bool
	link    int64
	order   []orderKey // fetch order of the last pass
}

type orderKey struct {
	repo, sha string
	tier      linkplan.Tier
}

// setOrder records the fetch order of a pass.
func (t *tracker) setOrder(cs []linkplan.Candidate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.order = t.order[:0]
	for _, c := range cs {
		t.order = append(t.order, orderKey{c.Repo, c.Revision, c.Tier})
	}
}

func newTracker() *tracker { return &tracker{repos: map[string]*RepoStatus{}} }

func (t *tracker) repo(id, url, bundles string) *RepoStatus {
	r, ok := t.repos[id]
	if !ok {
		r = &RepoStatus{Repo: id, URL: url, Bundles: bundles}
		t.repos[id] = r
		t.ids = append(t.ids, id)
	}
	return r
}

// setWanted replaces a repository's wanted list, keeping what is known of
// revisions that stay wanted.
func (t *tracker) setWanted(id, url, bundles string, wanted []wantedRev) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.repo(id, url, bundles)
	old := map[string]RevisionStatus{}
	for _, rv := range r.Revisions {
		old[rv.Revision] = rv
	}
	r.Revisions = r.Revisions[:0]
	for _, w := range wanted {
		rv, ok := old[w.sha]
		if !ok {
			rv = RevisionStatus{Revision: w.sha, State: StatePending, UpdatedAt: time.Now().UTC()}
		}
		rv.Refs, rv.Tip = w.refs, w.tip
		r.Revisions = append(r.Revisions, rv)
	}
}

// state returns the state of revision sha of repository id ("" when it is
// not tracked).
func (t *tracker) state(id, sha string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.repos[id]; ok {
		for _, rv := range r.Revisions {
			if rv.Revision == sha {
				return rv.State
			}
		}
	}
	return ""
}

func (t *tracker) update(id, sha string, f func(*RevisionStatus)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.repos[id]
	if !ok {
		return
	}
	for i := range r.Revisions {
		if r.Revisions[i].Revision == sha {
			f(&r.Revisions[i])
			r.Revisions[i].UpdatedAt = time.Now().UTC()
			return
		}
	}
}

func (t *tracker) passDone(id string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.repos[id]
	if !ok {
		return
	}
	now := time.Now().UTC()
	r.LastPass = &now
	r.LastError = ""
	if err != nil {
		r.LastError = err.Error()
	}
}

func (t *tracker) snapshot() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{Running: t.running, LinkBytesTotal: t.link}
	place := map[[2]string]int{}
	tiers := map[[2]string]linkplan.Tier{}
	for i, k := range t.order {
		place[[2]string{k.repo, k.sha}] = i + 1
		tiers[[2]string{k.repo, k.sha}] = k.tier
	}
	ids := append([]string(nil), t.ids...)
	sort.Strings(ids)
	for _, id := range ids {
		r := *t.repos[id]
		r.Revisions = append([]RevisionStatus(nil), r.Revisions...)
		for i := range r.Revisions {
			k := [2]string{id, r.Revisions[i].Revision}
			if q, ok := place[k]; ok {
				r.Revisions[i].Queue, r.Revisions[i].Priority = q, tiers[k].String()
			}
		}
		s.Repos = append(s.Repos, r)
	}
	return s
}
