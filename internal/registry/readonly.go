package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
)

// writeGate is the read-only switch. Writes enter and leave it; while it is
// read-only, new writes are refused with 503 and a Retry-After, and turning
// it read-only waits until the writes already running have finished, so
// nothing writes while a garbage collection sweeps.
type writeGate struct {
	mu       sync.Mutex
	readOnly bool
	inflight int
	drained  chan struct{} // closed when inflight drops to 0
}

func (g *writeGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.readOnly {
		return false
	}
	g.inflight++
	return true
}

func (g *writeGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight == 0 && g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
}

func (g *writeGate) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isRead(r) {
			next.ServeHTTP(w, r)
			return
		}
		if !g.enter() {
			w.Header().Set("Retry-After", "10")
			writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "registry is read-only for maintenance, retry later")
			return
		}
		defer g.leave()
		next.ServeHTTP(w, r)
	})
}

// ReadOnly reports whether the registry refuses writes.
func (r *Registry) ReadOnly() bool {
	r.gate.mu.Lock()
	defer r.gate.mu.Unlock()
	return r.gate.readOnly
}

// SetReadOnly switches the registry to read-only (on) or back. Read-only,
// pulls go on as usual and writes get 503 with Retry-After (clients retry);
// turning it on returns once the writes that were already running have
// finished. If ctx ends first, the previous state is restored and ctx's
// error returned.
func (r *Registry) SetReadOnly(ctx context.Context, on bool) error {
	g := r.gate
	g.mu.Lock()
	was := g.readOnly
	g.readOnly = on
	if !on || g.inflight == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.drained == nil {
		g.drained = make(chan struct{})
	}
	ch := g.drained
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		g.readOnly = was
		g.mu.Unlock()
		return fmt.Errorf("registry: wait for running writes: %w", ctx.Err())
	}
}

// GCOptions configure GarbageCollect.
type GCOptions struct {
	// DryRun finds what would be deleted and deletes nothing.
	DryRun bool
	// RemoveUntagged also deletes manifests that no tag points to. Leave
	// it off for ballast content: images pulled by digest are untagged on
	// purpose; retention deletes manifests itself, then collects.
	RemoveUntagged bool
}

// GarbageCollect deletes blobs (and, with RemoveUntagged, manifests) that no
// manifest references, with Distribution's mark and sweep. For the sweep the
// registry is read-only (pulls go on; see SetReadOnly) and switches back
// afterwards, unless it was read-only already.
//
// Mark and sweep deletes a blob pushed for a manifest that is not pushed
// yet, so in-process writers that bypass the HTTP API, and any pusher
// between its blob and manifest uploads, must not run concurrently: sync and
// retention share one lock for that.
func (r *Registry) GarbageCollect(ctx context.Context, opts GCOptions) error {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	wasReadOnly := r.ReadOnly()
	if !wasReadOnly {
		if err := r.SetReadOnly(ctx, true); err != nil {
			return err
		}
		defer func() {
			// Restoring the switch must not depend on a cancelled ctx.
			if err := r.SetReadOnly(context.WithoutCancel(ctx), false); err != nil {
				r.log.Error("registry: leave read-only mode", "err", err)
			}
		}()
	}
	if _, err := os.Stat(filepath.Join(r.root, "docker", "registry", "v2", "repositories")); errors.Is(err, fs.ErrNotExist) {
		return nil // nothing was ever pushed; mark and sweep fails on that
	}
	if err := fillLayerDirs(filepath.Join(r.root, "docker", "registry", "v2", "repositories")); err != nil {
		return fmt.Errorf("registry gc: %w", err)
	}
	start := time.Now()
	drv := r.newDriver()
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return fmt.Errorf("registry gc: open storage: %w", err)
	}
	err = storage.MarkAndSweep(ctx, drv, ns, storage.GCOpts{
		DryRun:         opts.DryRun,
		RemoveUntagged: opts.RemoveUntagged,
		Quiet:          true, // it prints to stdout otherwise
	})
	if err != nil {
		return fmt.Errorf("registry gc: %w", err)
	}
	r.log.Info("registry garbage collected", "dryRun", opts.DryRun, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// fillLayerDirs gives every repository that has manifests an _layers
// directory. A repository holding only an index whose children live in
// other repositories (a bundle index) has none, and Distribution's mark
// phase fails on the missing directory.
func fillLayerDirs(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || d.Name() != "_manifests" {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(filepath.Dir(p), "_layers"), 0o750); err != nil {
			return err
		}
		return filepath.SkipDir
	})
}
