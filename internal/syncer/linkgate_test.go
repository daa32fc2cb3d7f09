package syncer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/linkplan"
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

// Two reads can both hold a grant short of their blob: a manifest's bytes
// are charged while its grant is still held, so a read granted in between
// gets less than the budget had left, and the next one the rest. Each
// read that reaches the end of its grant stops only once the other open
// reads are done or stopped at the budget too: both stop (they waited for
// each other, for good).
func TestBudgetStopsTwoShortReads(t *testing.T) {
	g := newBudgetGate(t, 1000)
	ctx := context.Background()
	grant := func(need int64) int64 {
		t.Helper()
		n, err := g.grantRead(ctx, need)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
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
