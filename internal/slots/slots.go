// Package slots bounds how many requests of a kind a server runs at once,
// with a bounded wait for a free slot: the edge's blob and chart downloads
// and the mirror's LFS object downloads. A client that stops reading holds
// its slot until the server's write deadline cuts it; the others wait up to
// the set time and are then told to retry (the caller answers 503 with
// Retry-After), instead of piling up without limit.
package slots

import (
	"context"
	"errors"
	"time"
)

// ErrBusy is returned by Acquire when no slot came free in time.
var ErrBusy = errors.New("every slot busy")

// Slots is a fixed number of slots.
type Slots struct{ ch chan struct{} }

// New returns n slots (at least 1).
func New(n int) *Slots { return &Slots{ch: make(chan struct{}, max(n, 1))} }

// Acquire takes a slot, waiting at most wait, and returns the function that
// gives it back. It returns ErrBusy when none came free in time, or ctx's
// error when ctx ended first (the client left: nothing to answer).
func (s *Slots) Acquire(ctx context.Context, wait time.Duration) (release func(), err error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, ErrBusy
	}
}
