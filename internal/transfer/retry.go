package transfer

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
)

// Permanent marks err as not worth retrying: it is oci.Permanent.
func Permanent(err error) error { return oci.Permanent(err) }

// IsPermanent reports whether retrying err cannot help: it was marked
// Permanent, an index has nothing for the selected platforms
// (oci.ErrNoPlatform), the context ended, or a registry answered with a
// client error other than 408 (timeout) and 429 (too many requests).
func IsPermanent(err error) bool {
	if oci.IsPermanent(err) || errors.Is(err, oci.ErrNoPlatform) {
		return true
	}
	if errors.Is(err, registryclient.ErrStalled) {
		// A stall cancels the request's own context: not the caller's.
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var he *registryclient.HTTPError
	if errors.As(err, &he) {
		return he.Status >= 400 && he.Status < 500 && he.Status != 408 && he.Status != 429
	}
	return false
}

// retryPolicy is the one retry layer: exponential backoff with full jitter.
// Attempts that made progress (moved bytes) reset the budget, so a link that
// drops every few megabytes still finishes a large blob, while a dead link
// gives up after Attempts tries without progress.
type retryPolicy struct {
	Attempts int           // consecutive attempts without progress; default 6
	Base     time.Duration // first backoff; default 250ms
	Max      time.Duration // backoff cap; default 15s
	// Flat more failures in a row wait Base (the first one always does)
	// before the backoff starts to double: a link down for a few seconds
	// is noticed back within about Base, not after a wait as long as the
	// outage. Default 0.
	Flat int
}

// do runs f until it succeeds, fails permanently, the context ends, or the
// budget is spent. f returns whether it made progress.
func (p retryPolicy) do(ctx context.Context, onRetry func(err error, wait time.Duration), f func(ctx context.Context) (progress bool, err error)) error {
	failures := 0
	for {
		progress, err := f(ctx)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return err
		}
		if IsPermanent(err) {
			return err
		}
		if progress {
			failures = 0
		}
		failures++
		if failures >= p.Attempts {
			return err
		}
		backoff := p.Base << max(failures-1-p.Flat, 0)
		if backoff > p.Max || backoff <= 0 {
			backoff = p.Max
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if onRetry != nil {
			onRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
