package verify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
