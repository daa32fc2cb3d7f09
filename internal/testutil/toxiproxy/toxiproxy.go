// Package toxiproxy runs an in-process Toxiproxy v2 proxy for tests: a real
// TCP proxy between a client and a server that can cut connections, add
// latency and limit bandwidth.
package toxiproxy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is a running proxy to one upstream address.
type Proxy struct {
	t testing.TB
	p *toxiproxy.Proxy
	// Addr is the proxy's listen address (127.0.0.1:port).
	Addr string
}

// Start proxies a free loopback port to upstream; stopped when the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, "upstream", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{t: t, p: p, Addr: p.Listen}
}

// Add adds a toxic on the downstream (server → client) direction, e.g.
// Add("cut", "limit_data", `{"bytes":4194304}`): every connection is closed
// after that many bytes.
func (p *Proxy) Add(name, typ, attributes string) {
	p.t.Helper()
	js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":"downstream","toxicity":1,"attributes":%s}`, name, typ, attributes)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		p.t.Fatalf("toxiproxy add %s: %v", name, err)
	}
}

// CutEvery closes every connection after n bytes from the server.
func (p *Proxy) CutEvery(n int64) { p.Add("cut", "limit_data", fmt.Sprintf(`{"bytes":%d}`, n)) }

// Remove removes a toxic added with Add.
func (p *Proxy) Remove(name string) {
	p.t.Helper()
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		p.t.Errorf("toxiproxy remove %s: %v", name, err)
	}
}

// Stall stops all data from the server (connections stay open) until
// Remove("stall").
func (p *Proxy) Stall() { p.Add("stall", "timeout", `{"timeout":0}`) }
