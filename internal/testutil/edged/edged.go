// Package edged runs the real edge daemon (internal/edge) in process for
// tests, on loopback listeners, and stops it when the test ends.
package edged

import (
	"context"
	"testing"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/logging"
)

// Daemon is a running edge daemon.
type Daemon struct {
	*edge.Daemon
	// URL is the http listener's base, "http://127.0.0.1:port".
	URL string
	// Registry is the registry listener, "127.0.0.1:port".
	Registry string
}

// Start runs the daemon for cfg. Empty listen addresses become
// 127.0.0.1:0; cfg is validated first.
func Start(tb testing.TB, cfg *config.Config) *Daemon {
	tb.Helper()
	if cfg.Listen.HTTP == "" {
		cfg.Listen.HTTP = "127.0.0.1:0"
	}
	if cfg.Listen.Registry == "" {
		cfg.Listen.Registry = "127.0.0.1:0"
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	d, err := edge.New(cfg, logging.Discard())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("edge daemon: %v", err)
		}
	})
	select {
	case <-d.Started():
	case err := <-done:
		tb.Fatalf("edge daemon: %v", err)
	}
	return &Daemon{Daemon: d, URL: "http://" + d.Addr("http").String(), Registry: d.Addr("registry").String()}
}
