package gitmirror_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/gitmirror"
)

// MayPoll false (the link policy outside its windows, with
// gitPollOutsideWindows off) keeps scheduled polls off the upstream; once
// it answers true, the next scheduled poll fetches.
func TestMayPollHoldsScheduledPolls(t *testing.T) {
	up, _ := upstreamWithHistory(t)
	var allowed atomic.Bool
	var asked atomic.Int64
	h := startMirror(t, "", []string{up.URL("fleet/apps")}, func(o *gitmirror.Options) {
		o.Upstreams[0].PollInterval = 50 * time.Millisecond
		o.MayPoll = func() bool { asked.Add(1); return allowed.Load() }
	})
	deadline := time.Now().Add(time.Minute)
	for asked.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("MayPoll asked %d times", asked.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range h.m.Repos() {
		if r.LastAttempt != nil || r.Ready {
			t.Fatalf("polled while MayPoll said no: %+v", r)
		}
	}
	allowed.Store(true)
	for {
		rs := h.m.Repos()
		if len(rs) == 1 && rs[0].Ready && rs[0].LastSuccess != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never fetched once allowed: %+v", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
