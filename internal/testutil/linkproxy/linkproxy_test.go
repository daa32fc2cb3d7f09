package linkproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// server answers every connection: it reads one line ("n\n" is ignored
// beyond its presence) and writes size bytes, then closes.
func server(t *testing.T, size int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	payload := bytes.Repeat([]byte("x"), size)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := c.Read(b); err != nil {
					return
				}
				_, _ = c.Write(payload)
			}()
		}
	}()
	return ln.Addr().String()
}

// fetch asks for the payload through addr and reads it all.
func fetch(addr string) (int64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte("\n")); err != nil {
		return 0, err
	}
	return io.Copy(io.Discard, c)
}

// The round trip of a request through the proxy takes at least the two
// one-way delays: a lower bound, so a slow machine cannot fail it.
func TestDelayEachWay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		up, down time.Duration
	}{
		{"symmetric", 150 * time.Millisecond, 150 * time.Millisecond},
		{"down only", 0, 250 * time.Millisecond},
		{"up only", 250 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Start(t, server(t, 1000))
			p.SetDelay(tc.up, tc.down)
			start := time.Now()
			n, err := fetch(p.Addr)
			if err != nil || n != 1000 {
				t.Fatalf("fetch: %d bytes, %v", n, err)
			}
			if rtt := time.Since(start); rtt < tc.up+tc.down {
				t.Fatalf("round trip %v, shorter than the delays %v + %v", rtt, tc.up, tc.down)
			}
			// The up count lands just after the byte did: give it a moment.
			for deadline := time.Now().Add(5 * time.Second); p.Up() != 1 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if p.Down() != 1000 || p.Up() != 1 {
				t.Fatalf("counted down %d up %d, want 1000 and 1", p.Down(), p.Up())
			}
		})
	}
}

// Two connections at once share one rate: together they take at least
// (about) twice as long as one alone would at that rate. Per-connection
// limiters would finish in half the time.
func TestRateIsShared(t *testing.T) {
	const size, rate = 200_000, 1_000_000 // 0.2 s per connection alone
	p := Start(t, server(t, size))
	p.SetRate(rate)
	p.SetDelay(20*time.Millisecond, 20*time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			n, err := fetch(p.Addr)
			if err == nil && n != size {
				err = errors.New("short read")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// 800 kB at 1 MB/s is 0.8 s; the token bucket's burst lets at most a
	// few KiB through early. A per-connection rate would take 0.2 s.
	if min := 700 * time.Millisecond; elapsed < min {
		t.Fatalf("4 × %d bytes at a shared %d B/s took %v, want at least %v", size, rate, elapsed, min)
	}
	if p.Down() != 4*size {
		t.Fatalf("delivered %d bytes, want %d", p.Down(), 4*size)
	}
}

// An outage resets open connections (the reader sees an error, not a
// clean end), refuses new ones while it lasts, and the link works again
// afterwards.
func TestOutageResetsAndRefuses(t *testing.T) {
	const size = 50_000_000
	p := Start(t, server(t, size))
	p.SetRate(1_000_000) // 50 s for the whole payload: it is mid-transfer
	p.SetDelay(10*time.Millisecond, 10*time.Millisecond)
	got := make(chan error, 1)
	go func() {
		n, err := fetch(p.Addr)
		if err == nil {
			err = errors.New("clean end")
			if n == size {
				err = errors.New("whole payload arrived")
			}
		}
		got <- err
	}()
	// Wait until bytes flow, then take the link down.
	deadline := time.Now().Add(10 * time.Second)
	for p.Down() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no bytes flowed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.SetDown(true)
	select {
	case err := <-got:
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Fatalf("transfer during the outage ended with %v, want a connection reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the open connection survived the outage")
	}
	delivered := p.Down()
	if n, err := fetch(p.Addr); err == nil && n > 0 {
		t.Fatalf("a connection during the outage got %d bytes", n)
	}
	if p.Refused() != 1 || p.OutageCount() != 1 || p.Cuts() != 1 {
		t.Fatalf("refused %d, outages %d, cuts %d; want 1, 1, 1", p.Refused(), p.OutageCount(), p.Cuts())
	}
	if p.Down() != delivered {
		t.Fatalf("bytes delivered while down: %d", p.Down()-delivered)
	}
	p.SetDown(false)
	p.SetRate(0)
	if n, err := fetch(p.Addr); err != nil || n != size {
		t.Fatalf("after the outage: %d bytes, %v", n, err)
	}
}

// Outages recur on their schedule and end with the context.
func TestOutagesSchedule(t *testing.T) {
	p := Start(t, server(t, 10))
	ctx, cancel := context.WithCancel(context.Background())
	p.Outages(ctx, 100*time.Millisecond, 30*time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	for p.OutageCount() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d outages after 20 s of a 100 ms schedule", p.OutageCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	// Once the schedule stopped, the link stays up.
	deadline = time.Now().Add(10 * time.Second)
	for p.isDown.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the link stayed down after the schedule ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := p.OutageCount()
	time.Sleep(300 * time.Millisecond)
	if p.OutageCount() != n {
		t.Fatal("outages went on after the context ended")
	}
	if got, err := fetch(p.Addr); err != nil || got != 10 {
		t.Fatalf("after the schedule: %d bytes, %v", got, err)
	}
}
