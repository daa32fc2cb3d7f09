package syncer

import (
	"bytes"
	"context"
	"errors"
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

func grantOf(t *testing.T, g *linkGate, need int64) *grant {
	t.Helper()
	gr, err := g.grantRead(context.Background(), need)
	if err != nil {
		t.Fatal(err)
	}
	return gr
}

// Two reads can both hold a grant short of their blob: a read cut midway
// gives back what it did not read, and a read granted then takes it while
// the first short read is still open. Each read that reaches the end of
// its grant stops only once the other open reads are done or stopped at
// the budget too: both stop (they waited for each other, for good).
func TestBudgetStopsTwoShortReads(t *testing.T) {
	g := newBudgetGate(t, 1000)
	ctx := context.Background()
	cut := grantOf(t, g, 600)
	a := grantOf(t, g, 1000)
	g.charge(200, cut)
	g.finish(cut) // cut after 200 bytes: 400 go back
	b := grantOf(t, g, 1000)
	if !a.short || !b.short || a.size != 400 || b.size != 400 {
		t.Fatalf("grants %+v and %+v, want two short grants of 400", a, b)
	}
	stopped := make(chan error, 2)
	for _, gr := range []*grant{a, b} {
		go func() {
			g.charge(gr.size, gr)
			err := g.spent(ctx) // the read is at the end of its short grant
			g.finish(gr)
			stopped <- err
		}()
	}
	for range 2 {
		select {
		case err := <-stopped:
			if !errors.Is(err, ErrBudgetSpent) {
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

// A manifest's bytes leave its grant as they are charged: a read granted
// while the manifest is still open gets all the budget has left, not that
// less the manifest counted twice (charged, and still held).
func TestGrantSeesChargedBytesOnce(t *testing.T) {
	g := newBudgetGate(t, 1000)
	m := grantOf(t, g, 400)
	g.charge(400, m)
	b := grantOf(t, g, 1000)
	if b.size != 600 {
		t.Fatalf("granted %d while the manifest was open, want the 600 left", b.size)
	}
	g.finish(m)
	g.finish(b)
	if g.outstanding != 0 || g.active != 0 {
		t.Fatalf("after both: outstanding %d, active %d", g.outstanding, g.active)
	}
}

// A granted body over a reader outside meteredTransport takes its bytes
// off the grant itself: read whole, it ends at the blob's end and counts
// as finished; short, it stops at the budget after its granted bytes.
func TestGrantedBodyOutsideTheTransport(t *testing.T) {
	g := newBudgetGate(t, 1000)
	ctx := context.Background()
	blob := bytes.Repeat([]byte("x"), 700)
	whole := &grantedBody{rc: io.NopCloser(bytes.NewReader(blob)), gate: g, ctx: ctx, grant: grantOf(t, g, 700)}
	short := &grantedBody{rc: io.NopCloser(bytes.NewReader(blob)), gate: g, ctx: ctx, grant: grantOf(t, g, 700)}
	if short.grant.size != 300 {
		t.Fatalf("second grant %d, want 300", short.grant.size)
	}
	got, err := io.ReadAll(whole)
	if err != nil || len(got) != 700 {
		t.Fatalf("whole: %d bytes, %v", len(got), err)
	}
	if g.active != 1 {
		t.Fatalf("a whole grant read is finished: %d reads open", g.active)
	}
	got, err = io.ReadAll(short)
	if !errors.Is(err, ErrBudgetSpent) || len(got) != 300 {
		t.Fatalf("short: %d bytes, %v", len(got), err)
	}
	_ = whole.Close()
	_ = short.Close()
	if g.outstanding != 0 || g.active != 0 {
		t.Fatalf("after close: outstanding %d, active %d", g.outstanding, g.active)
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
