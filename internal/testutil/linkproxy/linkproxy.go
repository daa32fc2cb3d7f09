// Package linkproxy is a small TCP fault proxy for tests and benchmarks of
// the link: it counts the bytes it carries in each direction (the link's own
// count, not the code under test's), can cut every connection after a number
// of bytes from the server, and models a long, shared, flaky link:
//
//   - a one-way delay per direction (SetDelay: 300 ms each way is a GEO
//     satellite's 600 ms round trip);
//   - one rate per direction shared by every connection (SetRate, SetUpRate):
//     bytes queue in front of the link as at a modem, then cross it;
//   - outages (SetDown, Outages): every open connection is reset, bytes in
//     flight are lost, and new connections are refused until the link is up.
//
// Bytes are counted when they reach the other end, so bytes lost in flight
// during an outage are not counted as delivered. It listens on loopback.
package linkproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Proxy forwards one loopback port to one upstream address.
type Proxy struct {
	// Addr is the proxy's listen address (127.0.0.1:port).
	Addr string

	ln       net.Listener
	upstream string
	down     atomic.Int64 // server → client bytes delivered
	up       atomic.Int64 // client → server bytes delivered
	cuts     atomic.Int64
	refused  atomic.Int64
	outages  atomic.Int64
	cutEvery atomic.Int64
	hard     atomic.Bool
	isDown   atomic.Bool
	delayUp  atomic.Int64 // one-way delay, ns
	delayDn  atomic.Int64

	mu    sync.Mutex
	limDn *rate.Limiter
	limUp *rate.Limiter
	conns map[net.Conn]func()
	wg    sync.WaitGroup
	done  chan struct{}
}

// Start proxies a free loopback port to upstream until the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("linkproxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, upstream: upstream, conns: map[net.Conn]func(){}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// CutEvery closes every connection once it has carried n bytes from the
// server (each connection counts its own); 0 turns cutting off.
func (p *Proxy) CutEvery(n int64) { p.cutEvery.Store(n) }

// CutHard makes cuts resets (RST) instead of orderly closes: bytes the
// client's kernel holds unread are then lost, as on a link that drops.
func (p *Proxy) CutHard(b bool) { p.hard.Store(b) }

// SetRate shares bytesPerSecond (server → client) across all connections;
// 0 is unlimited.
func (p *Proxy) SetRate(bytesPerSecond int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limDn = newLimiter(bytesPerSecond)
}

// SetUpRate shares bytesPerSecond (client → server) across all
// connections; 0 (the default) is unlimited.
func (p *Proxy) SetUpRate(bytesPerSecond int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limUp = newLimiter(bytesPerSecond)
}

// newLimiter is a token bucket whose burst is about 10 ms of the rate
// (at least 1500 bytes, at most 32 KiB): bytes cross the link in packets,
// not in large bursts, so connections interleave finely.
func newLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(min(max(bytesPerSecond/100, 1500), 32<<10)))
}

// SetDelay sets the one-way delay of each direction: client → server (up)
// and server → client (down). Bytes cross the link at its rate, then
// arrive that much later; the round trip of a request is up + down. The
// default is none.
func (p *Proxy) SetDelay(up, down time.Duration) {
	p.delayUp.Store(int64(up))
	p.delayDn.Store(int64(down))
}

// SetDown takes the link down (true) or brings it back (false). Going down
// resets every open connection (RST: what was in flight is lost) and, while
// down, every new connection is reset at once (refused).
func (p *Proxy) SetDown(down bool) {
	if down && !p.isDown.Swap(true) {
		p.outages.Add(1)
		p.resetAll(true)
		return
	}
	if !down {
		p.isDown.Store(false)
	}
}

// Outages takes the link down for length out of every period, the first
// time period-length after the call (up first), until ctx ends or the
// proxy closes. It returns at once.
func (p *Proxy) Outages(ctx context.Context, period, length time.Duration) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.SetDown(false)
		next := time.Now().Add(period - length)
		for {
			for _, st := range []struct {
				down bool
				d    time.Duration
			}{{true, length}, {false, period - length}} {
				t := time.NewTimer(time.Until(next))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-p.done:
					t.Stop()
					return
				case <-t.C:
				}
				p.SetDown(st.down)
				next = next.Add(st.d)
			}
		}
	}()
}

// ResetAll closes every open connection now (an outage of no length),
// counting each as a cut.
func (p *Proxy) ResetAll() { p.resetAll(false) }

func (p *Proxy) resetAll(rst bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, kill := range p.conns {
		if rst {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		}
		kill()
		p.cuts.Add(1)
	}
}

// Down is the bytes delivered from the server to clients so far.
func (p *Proxy) Down() int64 { return p.down.Load() }

// Up is the bytes delivered from clients to the server so far.
func (p *Proxy) Up() int64 { return p.up.Load() }

// Cuts is how many connections the proxy cut (CutEvery, ResetAll or an
// outage).
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Refused is how many connections arrived while the link was down.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// OutageCount is how many times the link went down.
func (p *Proxy) OutageCount() int64 { return p.outages.Load() }

// Close stops accepting and closes every connection.
func (p *Proxy) Close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for _, kill := range p.conns {
		kill()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.isDown.Load() {
			p.refused.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) track(c net.Conn, kill func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	p.conns[c] = kill
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxy) limiter(up bool) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if up {
		return p.limUp
	}
	return p.limDn
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	closeBoth := func() { once.Do(func() { cancel(); client.Close(); server.Close() }) }
	if !p.track(client, closeBoth) || p.isDown.Load() {
		closeBoth()
		return
	}
	defer p.untrack(client)
	defer closeBoth()
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		p.pump(ctx, client, server, true)
		// The client finished sending: pass the half-close on, keep
		// the answer flowing.
		if tc, ok := server.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	if p.pump(ctx, server, client, false) {
		// The server's answer ended: half-close toward the client so it
		// sees the server's EOF.
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		select {
		case <-upDone:
		case <-ctx.Done():
		}
	}
}

// chunk is bytes in flight on the link, due at the far end at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pump carries src to dst until src ends (true: a clean EOF) or something
// fails. Bytes wait for the direction's shared rate, then for its delay.
func (p *Proxy) pump(ctx context.Context, src, dst net.Conn, up bool) (eof bool) {
	counter, delay := &p.down, &p.delayDn
	if up {
		counter, delay = &p.up, &p.delayUp
	}
	// The link: chunks in flight, delivered in order by the writer. Without
	// a delay the reader writes itself, so a slow client holds the server
	// back as directly as without the proxy.
	d := time.Duration(delay.Load())
	flight := make(chan chunk, 256)
	wdone := make(chan bool, 1)
	if d == 0 {
		flight = nil
		wdone <- true
	}
	go func() {
		if flight == nil {
			return
		}
		ok := true
		defer func() { wdone <- ok }()
		for c := range flight {
			if ok {
				if d := time.Until(c.due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-ctx.Done():
						t.Stop()
						ok = false
						continue
					case <-t.C:
					}
				}
				w, err := dst.Write(c.b)
				counter.Add(int64(w))
				if err != nil {
					ok = false
				}
			}
		}
	}()
	var sent int64
	cut := false
	defer func() {
		if flight != nil {
			close(flight)
		}
		ok := <-wdone
		if cut {
			p.cuts.Add(1)
			if tc, isTCP := dst.(*net.TCPConn); isTCP && p.hard.Load() {
				_ = tc.SetLinger(0)
			}
			eof = false
			return
		}
		eof = eof && ok
	}()
	for {
		want := 32 << 10
		if !up {
			if limit := p.cutEvery.Load(); limit > 0 {
				left := limit - sent
				if left <= 0 {
					cut = true
					return false
				}
				want = int(min(int64(want), left))
			}
		}
		lim := p.limiter(up)
		if lim != nil && want > lim.Burst() {
			want = lim.Burst()
		}
		buf := make([]byte, want)
		n, rerr := src.Read(buf)
		if n > 0 {
			if lim != nil {
				if err := lim.WaitN(ctx, n); err != nil {
					return false
				}
			}
			sent += int64(n)
			if flight == nil {
				w, err := dst.Write(buf[:n])
				counter.Add(int64(w))
				if err != nil {
					return false
				}
			} else {
				select {
				case flight <- chunk{b: buf[:n], due: time.Now().Add(d)}:
				case <-ctx.Done():
					return false
				}
			}
		}
		if rerr != nil {
			return errors.Is(rerr, io.EOF)
		}
	}
}
