package syncer

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// newBudgetGate is a link gate with a daily budget of budget bytes and no
// windows.
func newBudgetGate(t *testing.T, budget int64) *linkGate {
	t.Helper()
	clk := fixedClock(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	l, err := linkplan.OpenLedger(filepath.Join(t.TempDir(), "ledger.json"), linkplan.Budget{Day: budget}, clk)
	if err != nil {
		t.Fatal(err)
	}
	return newLinkGate(&linkplan.Plan{Clock: clk, Schedule: linkplan.NewSchedule(0), Ledger: l})
}

// grantBytes is a read's grant of up to need bytes; a refusal fails the
// test.
func grantBytes(t *testing.T, ctx context.Context, g *linkGate, need int64) int64 {
	t.Helper()
	n, err := g.grantRead(ctx, need)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Two reads can both hold a grant short of their blob: a manifest's bytes
// are charged while its grant is still held, so a read granted in between
// gets less than the budget had left, and the next one the rest. Each
// read that reaches the end of its grant stops only once the other open
// reads are done or stopped at the budget too: both stop (they waited for
// each other, for good).
func TestBudgetStopsTwoShortReads(t *testing.T) {
	g := newBudgetGate(t, 1000)
	ctx := context.Background()
	grant := func(need int64) int64 { return grantBytes(t, ctx, g, need) }
	manifest := grant(400)
	g.charge(manifest) // the manifest's bytes cross; its grant is released after
	b := grant(1000)
	g.release(manifest)
	g.closed()
	c := grant(1000)
	if b <= 0 || c <= 0 || b+c != 600 {
		t.Fatalf("grants %d and %d, want two short grants adding up to 600", b, c)
	}
	stopped := make(chan error, 2)
	for _, n := range []int64{b, c} {
		go func() {
			g.charge(n)
			g.release(n)
			err := g.spent(ctx) // the read is at the end of its short grant
			g.closed()
			stopped <- err
		}()
	}
	for range 2 {
		select {
		case err := <-stopped:
			if !isLinkStop(err) {
				t.Fatalf("stop: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("two reads at the budget wait for each other")
		}
	}
	if left, _ := g.plan.BudgetLeft(); left != 0 {
		t.Fatalf("%d bytes left", left)
	}
}

// A read at the end of its short grant and a read that saw the window
// close stop together: neither waits for the other to do as it does (the
// read at the budget waited for the parked read to close, the parked read
// for the other to park too, until the pass's deadline).
func TestBudgetStopAndWindowCloseTogether(t *testing.T) {
	g := newBudgetGate(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	grant := func(need int64) int64 { return grantBytes(t, ctx, g, need) }
	parked := grant(100)
	atBudget := grant(2000)
	g.charge(atBudget)
	g.release(atBudget)
	stopped := make(chan string, 2)
	go func() {
		_ = g.spent(ctx)
		g.closed()
		stopped <- "budget"
	}()
	go func() {
		for { // the window closes once the other read is at the budget
			g.mu.Lock()
			n := g.atBudget
			g.mu.Unlock()
			if n == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		g.parkClosed(ctx)
		g.release(parked)
		g.closed()
		stopped <- "window"
	}()
	for range 2 {
		<-stopped
	}
	if ctx.Err() != nil {
		t.Fatal("the two reads waited for each other until the deadline")
	}
}

// The upstream as errors name it: the wrapped client's "host/repo", never
// the struct (fmt would read the gate's lock while reads take it).
func TestMeteredSourceNamesTheUpstream(t *testing.T) {
	g := newBudgetGate(t, 1000)
	up, err := registryclient.New("127.0.0.1:5000/fleet/bundles")
	if err != nil {
		t.Fatal(err)
	}
	src := meteredSource{upstreamSource: up, gate: g}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_, _ = g.decide()
		}
	}()
	for range 100 {
		if got := fmt.Errorf("read bundle index %s:%s: %w", src, "a1", io.EOF).Error(); got != "read bundle index 127.0.0.1:5000/fleet/bundles:a1: EOF" {
			t.Fatalf("the error reads %q", got)
		}
	}
	<-done
}
