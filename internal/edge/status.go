package edge

import (
	"net/http"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/redact"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/version"
)

// Status is the daemon's whole state, served at /api/v1/status and drawn
// by the status page.
type Status struct {
	Version        string    `json:"version"`
	Now            time.Time `json:"now"`
	Platforms      []string  `json:"platforms"`
	DiskBytes      int64     `json:"diskBytes"`
	LinkBytesTotal int64     `json:"linkBytesTotal"`
	Syncing        bool      `json:"syncing"`
	// Link is the link policy: windows, rate cap, budget, and why sync
	// waits, if it does; each revision's forecast is in its CompleteBy.
	Link          syncer.LinkStatus `json:"link"`
	Repos         []RepoView        `json:"repos"`
	Verifications []Verification    `json:"verifications"`
	// Fleet is the publishing of the site's status to the hub; nil
	// without a fleet section in the config.
	Fleet *fleet.PublisherStatus `json:"fleet,omitempty"`
}

// RepoView joins what the mirror and sync know of one repository.
type RepoView struct {
	ID          string                  `json:"id"`
	URL         string                  `json:"url"`
	MirrorPath  string                  `json:"mirrorPath"`
	Bundles     string                  `json:"bundles,omitempty"`
	Ready       bool                    `json:"ready"`
	LastAttempt *time.Time              `json:"lastAttempt,omitempty"`
	LastSuccess *time.Time              `json:"lastSuccess,omitempty"`
	LastError   string                  `json:"lastError,omitempty"`
	Failures    int                     `json:"consecutiveFailures"`
	Tracked     []TrackedRef            `json:"tracked"`
	Revisions   []syncer.RevisionStatus `json:"revisions"`
	SyncError   string                  `json:"syncError,omitempty"`
}

// RevisionView is one wanted revision of a repository as the status
// document carries it (RepoView.Revisions).
type RevisionView = syncer.RevisionStatus

// TrackedRef is a tracked branch or tag: the upstream tip, and the newest
// revision of its history whose bundle is complete at the edge. For a
// gated branch, Ready is what the mirror actually advertises (empty: the
// branch is not advertised yet).
type TrackedRef struct {
	Name        string `json:"name"`
	UpstreamTip string `json:"upstreamTip"`
	Ready       string `json:"ready,omitempty"`
	Gated       bool   `json:"gated,omitempty"`
}

// diskCache recomputes the data dir's size at most every 30 s: walking a
// large registry on every page refresh would cost more than the page.
type diskCache struct {
	mu    sync.Mutex
	at    time.Time
	bytes int64
}

func (c *diskCache) get(dir string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 30*time.Second {
		c.bytes, c.at = diskUsage(dir), time.Now()
	}
	return c.bytes
}

// Status assembles the daemon's state.
func (d *Daemon) Status() Status {
	ss := d.Sync.Status()
	bySync := map[string]syncer.RepoStatus{}
	for _, r := range ss.Repos {
		bySync[r.Repo] = r
	}
	st := Status{
		Version:        version.Get().Version,
		Now:            time.Now().UTC(),
		Platforms:      ss.Platforms,
		DiskBytes:      d.disk.get(d.cfg.DataDir),
		LinkBytesTotal: ss.LinkBytesTotal,
		Syncing:        ss.Running,
		Link:           ss.Link,
		Verifications:  d.Verifications(),
	}
	if d.fleet != nil {
		fs := d.fleet.Status()
		st.Fleet = &fs
	}
	for _, m := range d.Mirror.Repos() {
		v := RepoView{ID: m.ID, URL: m.URL, MirrorPath: m.MirrorPath, Ready: m.Ready, LastAttempt: m.LastAttempt,
			LastSuccess: m.LastSuccess, LastError: m.LastError, Failures: m.ConsecutiveFailures, Revisions: []syncer.RevisionStatus{}}
		if cfg, ok := d.cfg.Repository(m.ID); ok {
			v.Bundles = cfg.Bundles
			v.Tracked = tracked(cfg.Track, m, bySync[m.ID])
		}
		if s, ok := bySync[m.ID]; ok {
			v.Revisions = make([]syncer.RevisionStatus, len(s.Revisions))
			for i, rv := range s.Revisions {
				rv.Error = redact.Text(rv.Error)
				v.Revisions[i] = rv
			}
			v.SyncError = redact.Text(s.LastError)
		}
		// Anonymous clients read this: no credential, whatever an error
		// message quotes (the mirror redacts its own fields too).
		v.URL, v.LastError = redact.Text(v.URL), redact.Text(v.LastError)
		st.Repos = append(st.Repos, v)
	}
	return st
}

func tracked(track []string, m gitmirror.RepoStatus, s syncer.RepoStatus) []TrackedRef {
	tips := map[string]string{}
	for _, r := range m.Refs {
		c := r.Commit
		if c == "" {
			c = r.Object
		}
		tips[r.Name] = c
	}
	out := []TrackedRef{}
	for _, name := range track {
		t := TrackedRef{Name: name, UpstreamTip: tips[name], Gated: contains(m.Gated, name)}
		if t.Gated {
			for _, a := range m.Advertised {
				if a.Name == name {
					t.Ready = a.Commit
				}
			}
			out = append(out, t)
			continue
		}
		for _, rv := range s.Revisions { // newest first
			if rv.State == syncer.StateComplete && contains(rv.Refs, name) {
				t.Ready = rv.Revision
				break
			}
		}
		out = append(out, t)
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (d *Daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, d.Status())
}
