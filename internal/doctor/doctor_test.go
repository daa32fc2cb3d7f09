package doctor

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/install"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func byCheck(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		if _, dup := m[r.Check]; !dup || r.Status != OK {
			m[r.Check] = r
		}
	}
	return m
}

func TestDoctor(t *testing.T) {
	// A real edge daemon with nothing configured to mirror.
	edge := edged.Start(t, &config.Config{DataDir: t.TempDir()})
	regAddr := edge.Registry

	k3s := t.TempDir()
	reg, err := k3sconfig.RegistriesYAML(regAddr)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(k3s, "registries.yaml"), reg)
	k3sData := t.TempDir()
	write(t, filepath.Join(k3s, "config.yaml"), install.K3sConfigYAML(k3sData))
	opts := Options{K3sConfigDir: k3s, EdgeURL: edge.URL, Registry: regAddr, DataDir: t.TempDir()}

	rs := Run(context.Background(), opts)
	if Failed(rs) {
		t.Fatalf("healthy node reported failures: %+v", rs)
	}
	for _, r := range rs {
		if r.Status != OK {
			t.Errorf("healthy node: %+v", r)
		}
	}

	t.Run("registries missing mirror", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "registries.yaml"), []byte("mirrors:\n  docker.io:\n    endpoint: [\"https://elsewhere:5000\"]\n"))
		o := opts
		o.K3sConfigDir = dir
		r := byCheck(Run(context.Background(), o))["k3s registries.yaml"]
		if r.Status != Fail || !strings.Contains(r.Detail, "no mirror points at") {
			t.Errorf("%+v", r)
		}
	})
	t.Run("registries bad yaml", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "registries.yaml"), []byte("mirrors: [\n"))
		o := opts
		o.K3sConfigDir = dir
		if r := byCheck(Run(context.Background(), o))["k3s registries.yaml"]; r.Status != Fail {
			t.Errorf("%+v", r)
		}
	})
	t.Run("data dir on tmpfs", func(t *testing.T) {
		if _, err := os.Stat("/dev/shm"); err != nil {
			realtest.Missing(t, "a /dev/shm tmpfs", "")
		}
		dir, err := os.MkdirTemp("/dev/shm", "ballast-doctor-")
		if err != nil {
			realtest.Missing(t, "a writable /dev/shm tmpfs: "+err.Error(), "")
		}
		defer os.RemoveAll(dir)
		o := opts
		o.DataDir = dir
		r := byCheck(Run(context.Background(), o))["ballast data dir"]
		if r.Status != Fail || !strings.Contains(r.Detail, "tmpfs") {
			t.Errorf("%+v", r)
		}
	})
	t.Run("daemon down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		o := opts
		o.EdgeURL, o.Registry = "http://"+addr, addr
		rs := Run(context.Background(), o)
		m := byCheck(rs)
		if !Failed(rs) || m["edge daemon"].Status != Fail || m["edge registry"].Status != Fail || m["k3s registries.yaml"].Status != Fail {
			t.Errorf("%+v", rs)
		}
	})
	t.Run("upstream fallback left on", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "registries.yaml"), reg)
		o := opts
		o.K3sConfigDir = dir
		r := byCheck(Run(context.Background(), o))["k3s config.yaml"]
		if r.Status != Warn {
			t.Errorf("%+v", r)
		}
	})
}
