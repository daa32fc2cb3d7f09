package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
)

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.ErrUnexpectedEOF, false},
		{&registryclient.HTTPError{Status: 500}, false},
		{&registryclient.HTTPError{Status: 503}, false},
		{&registryclient.HTTPError{Status: 429}, false},
		{&registryclient.HTTPError{Status: 408}, false},
		{&registryclient.HTTPError{Status: 401}, true},
		{fmt.Errorf("x: %w", &registryclient.HTTPError{Status: 404}), true},
		{Permanent(errors.New("x")), true},
		{context.Canceled, true},
		{fmt.Errorf("%w: %w", registryclient.ErrStalled, context.Canceled), false},
		{ErrDigestMismatch, false},
		{fmt.Errorf("manifest x: %w", oci.ErrNoPlatform), true},
	} {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetryBudgetResetsOnProgress(t *testing.T) {
	p := retryPolicy{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Millisecond}
	calls := 0
	// Ten failures that each make progress, then success: not given up.
	err := p.do(context.Background(), nil, func(context.Context) (bool, error) {
		calls++
		if calls <= 10 {
			return true, io.ErrUnexpectedEOF
		}
		return false, nil
	})
	if err != nil || calls != 11 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	calls = 0
	err = p.do(context.Background(), nil, func(context.Context) (bool, error) {
		calls++
		return false, io.ErrUnexpectedEOF
	})
	if err == nil || calls != 3 {
		t.Fatalf("no progress: err %v after %d calls, want 3", err, calls)
	}
	calls = 0
	err = p.do(context.Background(), nil, func(context.Context) (bool, error) {
		calls++
		return false, &registryclient.HTTPError{Status: 403}
	})
	if err == nil || calls != 1 {
		t.Fatalf("permanent: %d calls", calls)
	}
}

// With Flat, the first Flat+1 waits stay at the base backoff, then it
// doubles (jitter keeps each wait within [backoff/2, backoff]).
func TestRetryFlatThenDoubling(t *testing.T) {
	for _, flat := range []int{0, 3} {
		p := retryPolicy{Attempts: flat + 4, Base: time.Millisecond, Max: time.Second, Flat: flat}
		var waits []time.Duration
		_ = p.do(context.Background(), func(_ error, w time.Duration) { waits = append(waits, w) }, func(context.Context) (bool, error) {
			return false, io.ErrUnexpectedEOF
		})
		if len(waits) != flat+3 {
			t.Fatalf("flat %d: %d waits, want %d", flat, len(waits), flat+3)
		}
		for i, w := range waits {
			hi := p.Base << max(i-flat, 0)
			if w < hi/2 || w > hi {
				t.Errorf("flat %d: wait %d is %v, want within [%v, %v]", flat, i+1, w, hi/2, hi)
			}
		}
	}
}
