package slots

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAcquire(t *testing.T) {
	s := New(1)
	const wait = 50 * time.Millisecond
	release, err := s.Acquire(context.Background(), wait)
	if err != nil {
		t.Fatal(err)
	}
	// The only slot is taken: the next waits, then is busy.
	if _, err := s.Acquire(context.Background(), wait); !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: %v, want ErrBusy", err)
	}
	// A client that leaves gets its context's error, not ErrBusy.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Acquire(ctx, wait); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled context: %v", err)
	}
	release()
	r2, err := s.Acquire(context.Background(), wait)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	r2()
}
