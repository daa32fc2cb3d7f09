package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/helmrepo"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/version"
)

// addRegistryAndSync joins the edge registry (its own listener) and the
// sync loop of the site to the daemon, with their API routes.
func (d *Daemon) addRegistryAndSync() error {
	reg, sy := d.Registry, d.Sync
	d.AddListener("registry", d.cfg.Listen.Registry,
		noteBundleMisses(kickOnBundleWrite(limitReads(reg.Handler(), maxBlobReads, isBlobRead), sy.Kick), bundleRepos(d.cfg), &d.misses, d.syncWants, sy.Kick))
	d.AddService(Service{Name: "sync", Run: func(ctx context.Context) error {
		// The first pass reads the mirror's refs: before the mirror has
		// recovered its repositories it would find none, and with the
		// upstream offline no change would come to start another.
		select {
		case <-d.Mirror.Started():
		case <-ctx.Done():
			return nil
		}
		return sy.Run(ctx, d.Mirror.Subscribe(ctx))
	}})
	d.AddService(Service{Name: "registry", Run: func(ctx context.Context) error {
		<-ctx.Done()
		return d.site.Close()
	}})
	var err error
	if d.api, err = newAPIGuard(d.cfg, d.log); err != nil {
		d.site.Close()
		return err
	}
	d.AddReadyCheck("data-dir", func(context.Context) error { return writable(d.cfg.DataDir) })
	d.AddRoute("/api/v1/sync", http.HandlerFunc(d.serveSync))
	d.AddRoute("/api/v1/sync/now", http.HandlerFunc(d.serveSyncNow))
	d.AddRoute("/api/v1/status", http.HandlerFunc(d.serveStatus))
	d.AddRoute("/api/v1/edge", http.HandlerFunc(d.serveEdge))
	d.AddRoute("/api/v1/activate", http.HandlerFunc(d.serveActivate))
	d.AddRoute("/api/v1/verifications", http.HandlerFunc(d.serveVerifications))
	d.AddRoute(HelmPrefix, limitReads(helmrepo.New(helmStore{sync: sy, tr: reg.Transport()}, HelmPrefix, d.log), maxChartReads, isChartRead))
	return nil
}

// writable checks that dir accepts a new file.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".readyz-*")
	if err != nil {
		return fmt.Errorf("data dir not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (d *Daemon) serveSync(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, d.Sync.Status())
}

// EdgeInfo is served at /api/v1/edge: what verify needs to judge a bundle
// as this edge does.
type EdgeInfo struct {
	Version   string   `json:"version"`
	Platforms []string `json:"platforms"`
}

func (d *Daemon) serveEdge(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := d.cfg.Platforms
	if p == nil {
		p = []string{}
	}
	writeJSON(w, http.StatusOK, EdgeInfo{Version: version.Get().Version, Platforms: p})
}

// ActivateRequest is the body of POST /api/v1/activate.
type ActivateRequest struct {
	Repo     string `json:"repo"`     // upstream URL, as in the edge config
	Revision string `json:"revision"` // full commit SHA
}

// ActivateResponse answers POST /api/v1/activate.
type ActivateResponse struct {
	Complete bool             `json:"complete"`
	Missing  []bundle.Missing `json:"missing,omitempty"`
	Error    string           `json:"error,omitempty"`
}

func (d *Daemon) serveActivate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req ActivateRequest
	if code, err := decodeJSON(r, &req); err != nil {
		writeJSON(w, code, ActivateResponse{Error: err.Error()})
		return
	}
	// The body is in: the (long) activation must not be cut by a deadline.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	if _, ok := d.cfg.Repository(repoIDOf(req.Repo)); !ok || !bundle.IsRevision(req.Revision) {
		writeJSON(w, http.StatusBadRequest, ActivateResponse{Error: "unknown repository or bad revision"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rep, err := d.Sync.Activate(ctx, req.Repo, req.Revision, d.Deployed)
	switch {
	case errors.Is(err, syncer.ErrIncomplete):
		writeJSON(w, http.StatusConflict, ActivateResponse{Missing: rep.Missing, Error: err.Error()})
	case syncer.IsUntrusted(err):
		// The bundle is on site but the trust policy refuses it: a
		// state of the revision, not a fault of the daemon.
		writeJSON(w, http.StatusConflict, ActivateResponse{Error: err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, ActivateResponse{Error: err.Error()})
	default:
		writeJSON(w, http.StatusOK, ActivateResponse{Complete: rep.Complete(), Missing: rep.Missing})
	}
}

// Verification is one result of `ballast verify` as reported to the
// daemon, shown on the status page.
type Verification struct {
	Repo     string    `json:"repo"`
	Revision string    `json:"revision"`
	Allowed  bool      `json:"allowed"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

const maxVerifications = 50

type verifications struct {
	mu   sync.Mutex
	list []Verification // newest last
}

func (v *verifications) add(x Verification) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, x)
	if len(v.list) > maxVerifications {
		v.list = v.list[len(v.list)-maxVerifications:]
	}
}

// Verifications returns the latest verify results, newest first.
func (d *Daemon) Verifications() []Verification {
	d.verifs.mu.Lock()
	defer d.verifs.mu.Unlock()
	out := make([]Verification, 0, len(d.verifs.list))
	for i := len(d.verifs.list) - 1; i >= 0; i-- {
		out = append(out, d.verifs.list[i])
	}
	return out
}

func (d *Daemon) serveVerifications(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, d.Verifications())
	case http.MethodPost:
		var v Verification
		if code, err := decodeJSON(r, &v); err != nil {
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		if !bundle.IsRevision(v.Revision) || len(v.Reason) > 4096 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad verification: want repo, a full revision SHA, allowed and a reason under 4096 bytes"})
			return
		}
		if _, ok := d.cfg.Repository(repoIDOf(v.Repo)); !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown repository"})
			return
		}
		v.At = time.Now().UTC()
		d.verifs.add(v)
		if !v.Allowed {
			// The gate is waiting on this revision: the next pass
			// fetches it first (syncer.Options.Waiting).
			d.Sync.Kick()
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// diskUsage sums the sizes of the files under dir.
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func repoIDOf(u string) string {
	id, err := imageref.RepoID(u)
	if err != nil {
		return ""
	}
	return id
}

// importSettle is how long after a bundle index written from outside sync
// looks once more: an import loads the git objects right after the index,
// and the first pass may have read the mirror's refs before them.
const importSettle = 3 * time.Second

// kickOnBundleWrite passes requests to h and kicks sync after a manifest
// was written into the bundles namespace from outside (an `import
// --registry` into the running edge): a pass at once and one more after
// importSettle, so status, retention and the readiness gate see the
// imported revision without waiting for the sync interval.
func kickOnBundleWrite(h http.Handler, kick func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/v2/ballast/bundles/") || !strings.Contains(r.URL.Path, "/manifests/") {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status == http.StatusCreated {
			kick()
			time.AfterFunc(importSettle, kick)
		}
	})
}

// waitingFor is how long a NOT READY verify keeps its revision at the
// front of the fetch order: Argo CD retries a failed hook within minutes.
const waitingFor = 15 * time.Minute

// waitingOn reports whether the gate is waiting on revision sha of
// repository repoID: the latest verify of it, within waitingFor, answered
// NOT READY.
func (d *Daemon) waitingOn(repoID, sha string) bool {
	d.verifs.mu.Lock()
	defer d.verifs.mu.Unlock()
	for i := len(d.verifs.list) - 1; i >= 0; i-- {
		v := d.verifs.list[i]
		if v.Revision != sha || !strings.EqualFold(repoIDOf(v.Repo), repoID) {
			continue
		}
		return !v.Allowed && time.Since(v.At) < waitingFor
	}
	return false
}

// SyncNowRequest is the body of POST /api/v1/sync/now: a pass at once
// that may use the link outside its windows; IgnoreBudget also lets it
// spend past the budget.
type SyncNowRequest struct {
	IgnoreBudget bool `json:"ignoreBudget"`
}

// SyncNowResponse answers POST /api/v1/sync/now.
type SyncNowResponse struct {
	Accepted bool              `json:"accepted"`
	Link     syncer.LinkStatus `json:"link"`
	Error    string            `json:"error,omitempty"`
}

func (d *Daemon) serveSyncNow(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req SyncNowRequest
	if code, err := decodeJSON(r, &req); err != nil {
		writeJSON(w, code, SyncNowResponse{Error: err.Error()})
		return
	}
	d.Sync.SyncNow(linkplan.Override{Window: true, Budget: req.IgnoreBudget})
	d.log.Info("edge: sync now requested", "ignoreBudget", req.IgnoreBudget, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, SyncNowResponse{Accepted: true, Link: d.Sync.Status().Link})
}
