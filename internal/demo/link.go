package demo

import (
	"fmt"
	"github.com/ballast-dev/ballast/internal/units"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// LinkOptions shape the simulated satellite link between the edge and the
// cloud.
type LinkOptions struct {
	// Latency is added to every chunk the cloud sends (one way).
	Latency time.Duration
	// Bandwidth caps what the cloud sends, in bytes per second, over all
	// connections together. 0 is unlimited.
	Bandwidth int64
	// CutEvery closes each connection after this many bytes from the cloud,
	// the way a flaky link drops long transfers. 0 never cuts.
	CutEvery int64
}

func (l LinkOptions) String() string {
	s := fmt.Sprintf("%v latency", l.Latency)
	if l.Bandwidth > 0 {
		s += fmt.Sprintf(", %s/s shared by all connections", units.Bytes(l.Bandwidth))
	}
	if l.CutEvery > 0 {
		s += fmt.Sprintf(", every connection cut after %s", units.Bytes(l.CutEvery))
	}
	return s
}

// countToxic passes data through unchanged and counts it. Toxiproxy's own
// byte metrics are only updated when a connection ends cleanly, so a
// long-lived or dropped connection would go uncounted.
type countToxic struct {
	Counter string `json:"counter"`
}

// counters holds the byte counters of every countToxic, by name; toxics are
// built by Toxiproxy from JSON, so they find their counter here.
var counters sync.Map // string → *atomic.Int64

func counter(name string) *atomic.Int64 {
	c, _ := counters.LoadOrStore(name, new(atomic.Int64))
	return c.(*atomic.Int64)
}

var counterSeq atomic.Int64

const (
	countToxicType = "ballast_demo_count"
	cutToxicType   = "ballast_demo_cut"
	rateToxicType  = "ballast_demo_rate"
)

func init() {
	toxics.Register(countToxicType, new(countToxic))
	toxics.Register(cutToxicType, new(cutToxic))
	toxics.Register(rateToxicType, new(rateToxic))
}

// limiters holds the shared bandwidth limiters of rateToxics, by name.
var limiters sync.Map // string → *rate.Limiter

// rateBurst is the most one chunk may take from a limiter at once.
const rateBurst = 64 << 10

// rateToxic caps the bandwidth of every connection that uses the same
// limiter together, as a satellite link's capacity is shared; Toxiproxy's
// bandwidth toxic caps each connection on its own, so parallel blob
// downloads would get a multiple of the cap.
type rateToxic struct {
	Limiter string `json:"limiter"`
}

// Pipe implements toxics.Toxic.
func (t *rateToxic) Pipe(stub *toxics.ToxicStub) {
	v, ok := limiters.Load(t.Limiter)
	if !ok {
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	lim := v.(*rate.Limiter)
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			for data := c.Data; len(data) > 0; {
				n := min(len(data), rateBurst)
				r := lim.ReserveN(time.Now(), n)
				if d := r.Delay(); d > 0 {
					tm := time.NewTimer(d)
					select {
					case <-tm.C:
					case <-stub.Interrupt:
						// Toxics are only replaced when the link closes
						// here; pass the rest on rather than drop it.
						tm.Stop()
						r.Cancel()
						_ = stub.WriteOutput(&stream.StreamChunk{Timestamp: c.Timestamp, Data: data}, 5*time.Second)
						return
					}
				}
				stub.Output <- &stream.StreamChunk{Timestamp: c.Timestamp, Data: data[:n]}
				data = data[n:]
			}
		}
	}
}

// cutToxic closes a connection after Bytes bytes, like Toxiproxy's
// limit_data, but then drains what still arrives until the connection is
// gone: limit_data stops reading, which leaves the link's goroutines
// blocked forever.
type cutToxic struct {
	Bytes int64 `json:"bytes"`
}

// Pipe implements toxics.Toxic.
func (t *cutToxic) Pipe(stub *toxics.ToxicStub) {
	var sent int64
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if rest := t.Bytes - sent; int64(len(c.Data)) >= rest {
				if rest > 0 {
					stub.Output <- &stream.StreamChunk{Timestamp: c.Timestamp, Data: c.Data[:rest]}
				}
				stub.Close()
				drain(stub)
				return
			}
			sent += int64(len(c.Data))
			stub.Output <- c
		}
	}
}

func drain(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				return
			}
		}
	}
}

// Pipe implements toxics.Toxic.
func (t *countToxic) Pipe(stub *toxics.ToxicStub) {
	n := counter(t.Counter)
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			n.Add(int64(len(c.Data)))
			stub.Output <- c
		}
	}
}

// link is a set of in-process Toxiproxy proxies, one per upstream service,
// cut together.
type link struct {
	srv     *toxiproxy.ApiServer
	proxies map[string]*toxiproxy.Proxy
	counter map[string]string // proxy name → counter name
	limiter string            // the shared bandwidth limiter's name, if any
}

// newLink makes a link whose proxies share one bandwidth cap of
// bytesPerSec (0: none).
func newLink(bytesPerSec int64) *link {
	l := &link{
		srv:     toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		proxies: map[string]*toxiproxy.Proxy{},
		counter: map[string]string{},
	}
	if bytesPerSec > 0 {
		l.limiter = fmt.Sprintf("link-%d", counterSeq.Add(1))
		limiters.Store(l.limiter, rate.NewLimiter(rate.Limit(bytesPerSec), rateBurst))
	}
	return l
}

// add starts a proxy from a free loopback port to upstream and returns its
// address. Toxics go on the downstream direction (cloud → edge), where the
// bytes are; the bandwidth cap is the link's, shared by its proxies.
func (l *link) add(name, upstream string, o LinkOptions) (string, error) {
	p := toxiproxy.NewProxy(l.srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("link proxy %s: %w", name, err)
	}
	l.proxies[name] = p
	cname := fmt.Sprintf("%s-%d", name, counterSeq.Add(1))
	l.counter[name] = cname
	// Order matters: the cut counts bytes before the throttle delays
	// them, and the counter sees what is delivered.
	type toxic struct{ name, typ, attrs string }
	var ts []toxic
	if o.CutEvery > 0 {
		ts = append(ts, toxic{"cut", cutToxicType, fmt.Sprintf(`{"bytes":%d}`, o.CutEvery)})
	}
	if o.Latency > 0 {
		ts = append(ts, toxic{"latency", "latency", fmt.Sprintf(`{"latency":%d}`, o.Latency.Milliseconds())})
	}
	if l.limiter != "" {
		ts = append(ts, toxic{"bandwidth", rateToxicType, fmt.Sprintf(`{"limiter":%q}`, l.limiter)})
	}
	ts = append(ts, toxic{"count", countToxicType, fmt.Sprintf(`{"counter":%q}`, cname)})
	for _, t := range ts {
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":"downstream","toxicity":1,"attributes":%s}`, t.name, t.typ, t.attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return "", fmt.Errorf("link proxy %s: toxic %s: %w", name, t.name, err)
		}
	}
	return p.Listen, nil
}

// cut takes the link down: listeners closed, open connections dropped.
func (l *link) cut() {
	for _, p := range l.proxies {
		p.Stop()
	}
}

// close stops every proxy and forgets the counters.
func (l *link) close() {
	for name, p := range l.proxies {
		p.Stop()
		counters.Delete(l.counter[name])
	}
	if l.limiter != "" {
		limiters.Delete(l.limiter)
	}
}

// bytesToEdge is how many bytes the named proxy has delivered to the edge
// so far: the link's own count, independent of ballast's, HTTP headers
// included.
func (l *link) bytesToEdge(name string) int64 {
	return counter(l.counter[name]).Load()
}
