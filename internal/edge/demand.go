package edge

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
)

// maxBundleMisses bounds the revisions asked of the edge registry and not
// found that the daemon remembers at once (over all repositories); the
// oldest goes first.
const maxBundleMisses = 32

// missRekick is how often a repeated miss of the same revision kicks sync
// again: a downstream edge asks every few seconds while it waits.
const missRekick = 30 * time.Second

// bundleMisses remembers revisions whose bundle an edge downstream asked
// this edge's registry for and did not find: each is wanted on demand
// (syncer.Options.Demanded) for waitingFor after its last miss, so a ship
// behind a port can roll back to any revision the port's upstream still
// keeps, through any number of edges.
type bundleMisses struct {
	mu   sync.Mutex
	list []bundleMiss // oldest first
}

type bundleMiss struct {
	repoID, sha string
	at, kicked  time.Time
}

// note records a miss of revision sha of repository repoID and reports
// whether sync should be kicked for it (new, or last kicked missRekick ago).
func (m *bundleMisses) note(repoID, sha string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.list {
		if x.repoID == repoID && x.sha == sha {
			x.at = now
			kick := now.Sub(x.kicked) >= missRekick
			if kick {
				x.kicked = now
			}
			m.list = append(append(m.list[:i:i], m.list[i+1:]...), x)
			return kick
		}
	}
	m.list = append(m.list, bundleMiss{repoID: repoID, sha: sha, at: now, kicked: now})
	if len(m.list) > maxBundleMisses {
		m.list = m.list[len(m.list)-maxBundleMisses:]
	}
	return true
}

// recent lists the revisions of repoID missed within waitingFor, newest
// first.
func (m *bundleMisses) recent(repoID string, now time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for i := len(m.list) - 1; i >= 0; i-- {
		if x := m.list[i]; x.repoID == repoID && now.Sub(x.at) < waitingFor {
			out = append(out, x.sha)
		}
	}
	return out
}

// demanded lists the revisions of repository repoID that sync should
// fetch beyond its wanted history (syncer.Options.Demanded): those the
// gate waits on (the latest verify of each, within waitingFor, answered
// NOT READY) and those an edge downstream asked for and did not find.
func (d *Daemon) demanded(repoID string) []string {
	now := time.Now()
	seen := map[string]bool{}
	var out []string
	d.verifs.mu.Lock()
	for i := len(d.verifs.list) - 1; i >= 0; i-- {
		v := d.verifs.list[i]
		if seen[v.Revision] || !strings.EqualFold(repoIDOf(v.Repo), repoID) {
			continue
		}
		seen[v.Revision] = true
		if !v.Allowed && now.Sub(v.At) < waitingFor {
			out = append(out, v.Revision)
		}
	}
	d.verifs.mu.Unlock()
	for _, sha := range d.misses.recent(repoID, now) {
		if !seen[sha] {
			seen[sha] = true
			out = append(out, sha)
		}
	}
	return out
}

// bundleRepos maps each configured repository's bundle repository in the
// edge registry ("ballast/bundles/<repo-id>") to its repository id.
func bundleRepos(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, r := range cfg.Repositories {
		if r.Bundles == "" {
			continue
		}
		br, err1 := imageref.BundleRepository(r.URL)
		id, err2 := imageref.RepoID(r.URL)
		if err1 == nil && err2 == nil {
			out[br] = id
		}
	}
	return out
}

// noteBundleMisses passes requests to h and, when a read of a bundle
// index by revision (GET or HEAD /v2/ballast/bundles/<repo-id>/manifests/
// <40-hex sha>) of a configured repository answers 404, records the miss
// and kicks sync: the revision is then fetched on demand if the mirror
// holds its commit. Reads are anonymous, so what a miss can cost is
// bounded: only commits of configured repositories, at most
// maxBundleMisses remembered, and the link policy (windows, budget)
// applies as to any fetch.
// A miss of a revision sync already wants (its sync under way, or its
// bundle not upstream yet) kicks nothing: sync is at it.
func noteBundleMisses(h http.Handler, repos map[string]string, misses *bundleMisses, wanted func(repoID, sha string) bool, kick func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		name, ref, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
		id, known := repos[name]
		if !ok || !known || !bundle.IsRevision(ref) {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status == http.StatusNotFound && !wanted(id, ref) && misses.note(id, ref, time.Now()) {
			kick()
		}
	})
}

// syncWants reports whether sync lists revision sha of repository repoID
// among its wanted revisions.
func (d *Daemon) syncWants(repoID, sha string) bool {
	for _, r := range d.Sync.Status().Repos {
		if !strings.EqualFold(r.Repo, repoID) {
			continue
		}
		for _, rv := range r.Revisions {
			if rv.Revision == sha {
				return true
			}
		}
	}
	return false
}
