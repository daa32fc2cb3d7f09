// Package linkproxy is a small TCP fault proxy for tests of the link: it
// counts the bytes it carries in each direction (the link's own count, not
// the code under test's), can cut every connection after a number of bytes
// from the server, can share one rate limit across all connections, and can
// reset every open connection at once (an outage). It listens on loopback.
package linkproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// Proxy forwards one loopback port to one upstream address.
type Proxy struct {
	// Addr is the proxy's listen address (127.0.0.1:port).
	Addr string

	ln       net.Listener
	upstream string
	down     atomic.Int64 // server → client bytes
	up       atomic.Int64 // client → server bytes
	cuts     atomic.Int64
	cutEvery atomic.Int64
	hard     atomic.Bool

	mu    sync.Mutex
	lim   *rate.Limiter
	conns map[net.Conn]struct{}
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
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
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
	if bytesPerSecond <= 0 {
		p.lim = nil
		return
	}
	p.lim = rate.NewLimiter(rate.Limit(bytesPerSecond), int(min(bytesPerSecond, 32<<10)))
}

// ResetAll closes every open connection now (an outage), counting each as
// a cut.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		p.cuts.Add(1)
	}
}

// Down is the bytes carried from the server to clients so far.
func (p *Proxy) Down() int64 { return p.down.Load() }

// Up is the bytes carried from clients to the server so far.
func (p *Proxy) Up() int64 { return p.up.Load() }

// Cuts is how many connections the proxy cut (CutEvery or ResetAll).
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

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
	for c := range p.conns {
		c.Close()
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
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		select {
		case <-p.done:
			return false
		default:
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) limiter() *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lim
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, true) {
		client.Close()
		server.Close()
		return
	}
	defer p.track(client, false)
	var once sync.Once
	closeBoth := func() { once.Do(func() { client.Close(); server.Close() }) }
	defer closeBoth()
	go func() {
		n, _ := io.Copy(server, client)
		p.up.Add(n)
		closeBoth()
	}()
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		want := buf
		if limit := p.cutEvery.Load(); limit > 0 {
			left := limit - sent
			if left <= 0 {
				p.cuts.Add(1)
				if tc, ok := client.(*net.TCPConn); ok && p.hard.Load() {
					_ = tc.SetLinger(0)
				}
				return
			}
			if int64(len(want)) > left {
				want = want[:left]
			}
		}
		if lim := p.limiter(); lim != nil && len(want) > lim.Burst() {
			want = want[:lim.Burst()]
		}
		n, rerr := server.Read(want)
		if n > 0 {
			if lim := p.limiter(); lim != nil {
				if err := lim.WaitN(context.Background(), n); err != nil {
					return
				}
			}
			w, werr := client.Write(want[:n])
			p.down.Add(int64(w))
			sent += int64(w)
			if werr != nil {
				return
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				return
			}
			// Half-close toward the client so it sees the server's EOF.
			if tc, ok := client.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
