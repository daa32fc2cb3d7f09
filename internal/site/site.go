// Package site opens an edge site: the data dir of one edge config, with
// its git mirror, registry, deployed store and syncer, composed once. The
// daemon (internal/edge), `sync --once` and `import --config` all open it
// here, as restic's commands open a repository through one function that
// checks the config, takes the lock and hands back one value.
package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// DefaultLockWait is how long Open waits for the data dir lock: a pass
// that was just killed may leave a child holding it for a moment.
const DefaultLockWait = 5 * time.Second

// ErrLocked is returned by Open when another process (the edge daemon, a
// `sync --once`, an `import --config`) holds the data dir.
var ErrLocked = syncer.ErrLocked

// Options for Open.
type Options struct {
	Logger *slog.Logger
	// Metrics, when set, receives the mirror's and sync's metrics.
	Metrics prometheus.Registerer
	// Daemon opens the site for `ballast edge`: the lock is taken by the
	// sync loop for its lifetime (syncer.Run), the mirror is opened by its
	// own Run. Otherwise Open takes the lock and opens the mirror.
	Daemon bool
	// LockWait bounds the wait for the lock. The default value is
	// DefaultLockWait.
	LockWait time.Duration
	// Notify is passed to the syncer (syncer.Options.Notify).
	Notify func(repoID string)
	// DepsFetched, when set, is called (without blocking) after commits of
	// a git dependency repository (a submodule, a remote base) were
	// fetched or loaded into the mirror, after the LFS store is told.
	DepsFetched func()
	// LFSFetched, when set, is called (without blocking) with a
	// repository's id after LFS objects of it (a configured repository or
	// a git dependency's) arrived in the site's LFS store
	// (lfs.Options.Fetched).
	LFSFetched func(repoID string)
	// Revisions are wanted on demand beyond the kept history, in every
	// repository whose mirror has the commit (`sync --once --revision`;
	// syncer.Options.Demanded).
	Revisions []string
	// SyncOptions, when set, adjusts the syncer's options before it is
	// built (tests make retries fast with it).
	SyncOptions func(*syncer.Options)
}

// Site is an open edge data dir. Close releases it.
type Site struct {
	Config *config.Config
	Layout datadir.Layout
	// Mirror is the git mirror of the configured repositories.
	Mirror *gitmirror.Mirror
	// Registry is the edge registry, in process.
	Registry *registry.Registry
	// Deployed remembers the revisions verify --activate recorded.
	Deployed *syncer.DeployedStore
	// Sync brings bundles aboard and lands imports.
	Sync *syncer.Syncer
	// LFS keeps and serves the LFS objects of the kept revisions.
	LFS *lfs.Mirror

	log    *slog.Logger
	unlock func()
}

// Open checks cfg, takes the data dir's lock (unless o.Daemon) and opens
// every part of the site: it creates the data dir's directories and the
// registry's credentials when missing. Errors: cfg invalid (wrapping
// config's error), ErrLocked, or the failing part's error.
func Open(ctx context.Context, cfg *config.Config, o Options) (*Site, error) {
	if cfg == nil {
		return nil, errors.New("site: no config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edge config: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	s := &Site{Config: cfg, Layout: datadir.Of(cfg.DataDir), log: o.Logger, unlock: func() {}}
	if !o.Daemon {
		unlock, err := syncer.LockWait(ctx, cfg.DataDir, o.LockWait)
		if err != nil {
			return nil, err
		}
		s.unlock = unlock
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	m, err := gitmirror.New(gitmirror.Options{DataDir: cfg.DataDir, Upstreams: MirrorUpstreams(cfg), Logger: o.Logger, Metrics: o.Metrics,
		// The link policy (link.gitPollOutsideWindows) decides; the syncer
		// that holds it is built below, before the mirror runs.
		MayPoll: func() bool { return s.Sync == nil || s.Sync.GitPollAllowed() },
		// New commits of a submodule or remote base: their LFS objects.
		DepsFetched: func() {
			if s.LFS != nil {
				s.LFS.DepsChanged()
			}
			if o.DepsFetched != nil {
				o.DepsFetched()
			}
		}})
	if err != nil {
		return nil, err
	}
	s.Mirror = m
	if !o.Daemon {
		if err := m.Open(ctx); err != nil {
			return nil, err
		}
	}
	reg, err := registry.New(ctx, registry.Options{DataDir: cfg.DataDir, CredentialsFile: cfg.CredentialsFile(), Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	s.Registry = reg
	if s.Deployed, err = syncer.OpenDeployed(cfg.DataDir); err != nil {
		return nil, err
	}
	so := syncer.Options{
		Config:    cfg,
		Mirror:    m,
		Local:     reg,
		Deployed:  s.Deployed,
		Logger:    o.Logger,
		Metrics:   o.Metrics,
		Collector: syncer.CollectorFunc(func(ctx context.Context) error { return reg.GarbageCollect(ctx, registry.GCOptions{}) }),
		Notify:    o.Notify,
	}
	if revs := o.Revisions; len(revs) > 0 {
		so.Demanded = func(string) []string { return revs }
	}
	if o.SyncOptions != nil {
		o.SyncOptions(&so)
	}
	if s.Sync, err = syncer.New(so); err != nil {
		return nil, err
	}
	if err := s.openLFS(o.Metrics, o.LFSFetched); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Close closes the registry and releases the lock. It is safe to call
// more than once.
func (s *Site) Close() error {
	var err error
	if s.Registry != nil {
		err = s.Registry.Close()
		s.Registry = nil
	}
	s.unlock()
	s.unlock = func() {}
	return err
}

// MirrorUpstreams is the git mirror's view of cfg's repositories. Every
// process that opens the mirror's data must use it: a mirror opened
// without a repository's gated branches would move them back to the
// upstream tips.
func MirrorUpstreams(cfg *config.Config) []gitmirror.Upstream {
	var ups []gitmirror.Upstream
	for _, r := range cfg.Repositories {
		u := gitmirror.Upstream{URL: r.URL, PollInterval: r.PollInterval.Duration, Gated: GatedBranches(r), Track: r.Track}
		if r.Credentials != nil {
			u.UsernameFile, u.PasswordFile = r.Credentials.UsernameFile, r.Credentials.PasswordFile
		}
		ups = append(ups, u)
	}
	return ups
}

// GatedBranches lists the tracked branches of r whose advertisement waits
// for a complete bundle (config `gate: true`); nil when r is not gated.
func GatedBranches(r config.Repository) []string {
	if !r.Gate {
		return nil
	}
	var out []string
	for _, t := range r.Track {
		if strings.HasPrefix(t, "refs/heads/") {
			out = append(out, t)
		}
	}
	return out
}
