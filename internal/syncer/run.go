package syncer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"time"

	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/gitmirror"
)

// CollectorFunc adapts a function to Collector.
type CollectorFunc func(ctx context.Context) error

// Collect implements Collector.
func (f CollectorFunc) Collect(ctx context.Context) error { return f(ctx) }

// ErrLocked is returned when another sync (the edge daemon, or another
// `sync --once`) holds the data dir's sync lock.
var ErrLocked = errors.New("another sync holds the lock (is the edge daemon running on this data dir?)")

// Lock takes the sync lock of dataDir without waiting. Unlock releases it;
// so does the process ending, however it ends.
func Lock(dataDir string) (unlock func(), err error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	p := datadir.Of(dataDir).SyncLock()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// LockWait is Lock, retried until wait has passed: a pass that was just
// killed may leave a child for a moment that still holds the lock.
func LockWait(ctx context.Context, dataDir string, wait time.Duration) (func(), error) {
	deadline := time.Now().Add(wait)
	for {
		unlock, err := Lock(dataDir)
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Run syncs until ctx is done: a pass at start, after every mirror change,
// and on the interval; after a failed pass, sooner, with backoff and jitter.
// It holds the data dir's sync lock for its lifetime.
func (s *Syncer) Run(ctx context.Context, changes <-chan gitmirror.RefsChanged) error {
	unlock, err := Lock(s.o.Config.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	backoff := time.Duration(0)
	// CI pushes a revision's bundle some time after the commit: while a
	// wanted revision has none yet, look again sooner than the interval.
	noBundleWait := time.Duration(0)
	for {
		res, err := s.Pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := s.o.Interval
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 2*time.Second), s.o.Interval)
			wait = backoff/2 + rand.N(backoff/2+1)
			s.log.Warn("sync pass incomplete", "err", err, "retryIn", wait.Round(time.Millisecond))
		case res.LinkStop != "" || res.Waiting > 0:
			// The link policy holds revisions: look again when it may
			// allow the link (a window opens, a period rolls over), or on
			// the interval, whichever is first; SyncNow kicks sooner.
			backoff, noBundleWait = 0, 0
			if !res.LinkUntil.IsZero() {
				if d := res.LinkUntil.Sub(s.plan.Clock.Now()); d < wait {
					wait = max(d, time.Second)
				}
			}
		case res.NoBundle > 0:
			backoff = 0
			noBundleWait = min(max(2*noBundleWait, 2*time.Second), s.o.Interval)
			wait = noBundleWait
		default:
			backoff, noBundleWait = 0, 0
			if res.Wanted > 0 {
				s.log.Debug("sync pass done", "wanted", res.Wanted, "complete", res.Complete, "noBundle", res.NoBundle)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.kick:
			t.Stop()
		case _, ok := <-changes:
			t.Stop()
			if !ok {
				changes = nil
			}
		}
	}
}

// Kick asks the running loop (Run) for a pass now, as after a mirror
// change: something outside sync wrote to the site (an import into the
// running edge registry). It never blocks; kicks while a pass runs fold
// into one more pass.
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
