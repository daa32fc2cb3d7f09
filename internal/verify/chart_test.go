package verify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestVerifyNamesMissingChart: a revision whose bundle holds a Helm-built
// chart is ready once the chart is on site too; when the chart's manifest
// is gone from the edge registry the gate refuses and names the chart as
// the Application does (bundle.Image.Name), not by its storage name.
func TestVerifyNamesMissingChart(t *testing.T) {
	s := startEdge(t)
	ch := helmrepo.PackageOCI(t, helmrepo.Chart{Name: "cert-manager", Version: "1.15.0", Image: "quay.io/jetstack/cert-manager-controller:v1.15.0"})
	sha := s.repo.Commit("main", map[string]string{"charts": "1"})
	helmrepo.PushBundle(t, s.up.Repo("fleet/apps-bundles"), sha,
		helmrepo.ChartEntry(t, "https://charts.example.com/stable", ch),
		helmrepo.Entry{Ref: "ghcr.io/org/app:v1", Image: testimage.Image(t, "linux/amd64", 1, 32<<10)})
	s.waitSynced(sha)
	r := s.verify(sha)
	if !r.Ready || r.Images != 1 || r.Charts != 1 || r.Blobs != 4 {
		t.Fatalf("ready %v, %d images, %d charts, %d blobs (want true, 1, 1, 4): %s", r.Ready, r.Images, r.Charts, r.Blobs, r.Reason)
	}

	// Take the chart's manifest away, as a damaged disk would.
	d, _ := ch.Digest()
	link := filepath.Join(s.d.Registry.StorageDir(), "docker/registry/v2/repositories/charts.example.com/stable/cert-manager/_manifests/revisions/sha256", d.Hex)
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	r = s.verify(sha)
	const want = "chart cert-manager 1.15.0 from https://charts.example.com/stable: not on site"
	if r.Ready || !strings.Contains(r.Reason, want) {
		t.Fatalf("ready %v, reason %q; want not ready naming %q", r.Ready, r.Reason, want)
	}
	t.Logf("reason: %s", r.Reason)
}

// TestVerifyNamesChartSyncWaitsFor: when the bundle index is not on site
// yet because a chart cannot be brought (its archive is damaged upstream,
// so sync refuses it), the gate names the chart sync is waiting for, from
// sync's status.
func TestVerifyNamesChartSyncWaitsFor(t *testing.T) {
	s := startEdge(t)
	ch := helmrepo.PackageOCI(t, helmrepo.Chart{Name: "cert-manager", Version: "1.16.0", Image: "quay.io/jetstack/cert-manager-controller:v1.16.0"})
	m, _ := ch.Manifest()
	sha := s.repo.Commit("main", map[string]string{"charts": "2"})
	helmrepo.PushBundle(t, s.up.Repo("fleet/apps-bundles"), sha, helmrepo.ChartEntry(t, "https://charts.example.com/stable", ch))
	ld := m.Layers[0].Digest
	p := filepath.Join(s.up.DataDir(), "docker/registry/v2/blobs/sha256", ld.Hex[:2], ld.Hex, "data")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "chart cert-manager 1.16.0 from https://charts.example.com/stable: not on site"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := s.verify(sha)
		if r.Ready {
			t.Fatalf("ready with a damaged chart")
		}
		if strings.Contains(r.Reason, want) {
			t.Logf("reason: %s", r.Reason)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reason %q never named %q", r.Reason, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
