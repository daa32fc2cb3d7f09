package syncer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// TestSyncCarriesCharts: bundles holding Helm-built charts in Helm's OCI
// form (config application/vnd.cncf.helm.config.v1+json, one chart layer),
// an OCI source and an image go through the same sync as images under a
// platform selection: every chart manifest, config and layer lands under
// the chart's reference with its tag ('+' as '_'), completeness counts
// them, and retention deletes the chart of a revision no longer kept.
func TestSyncCarriesCharts(t *testing.T) {
	s := newSite(t, func(c *config.Config) { c.Repositories[0].KeepRevisions = 0 })
	const repoURL = "https://charts.example.com/stable"
	v1c := helmrepo.PackageOCI(t, helmrepo.Chart{Name: "cert-manager", Version: "1.15.0", Image: "quay.io/jetstack/cert-manager-controller:v1.15.0"})
	v2c := helmrepo.PackageOCI(t, helmrepo.Chart{Name: "cert-manager", Version: "1.16.0+build.1", Image: "quay.io/jetstack/cert-manager-controller:v1.16.0"})
	src := helmrepo.PackageOCI(t, helmrepo.Chart{Name: "manifests", Version: "0.1.0", Image: "x"}) // any manifest with blobs
	img := testimage.Image(t, "linux/amd64", 1, 64<<10)
	sourceEntry := helmrepo.Entry{Ref: "registry.example.com/manifests/app:1.0.0", Image: src.Image,
		Chart: &bundle.Chart{RepoURL: "oci://registry.example.com/manifests/app", Version: "1.0.0"}}

	rev1 := s.commit(map[string]string{"a": "1"})
	helmrepo.PushBundle(t, s.up.Repo(s.bundles), rev1, helmrepo.ChartEntry(t, repoURL, v1c), sourceEntry,
		helmrepo.Entry{Ref: "ghcr.io/org/app:v1", Image: img})
	if res := s.pass(); res.Complete != 1 || !res.Done() {
		t.Fatalf("pass 1: %+v", res)
	}
	rep := s.check(rev1)
	if !rep.Complete() {
		t.Fatalf("rev1 not complete: %v", rep.Missing)
	}
	// Config + layer of two charts-like entries, config + layer of the image.
	if rep.Blobs != 6 {
		t.Errorf("blobs %d, want 6", rep.Blobs)
	}
	local := func(repo string) *registryclient.Remote {
		r, err := registryclient.New("edge.invalid/"+repo, registryclient.WithInsecure(true), registryclient.WithTransport(s.reg.Transport()),
			registryclient.WithKeychain(authn.NewMultiKeychain()))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	d1, _ := v1c.Digest()
	chartRepo := local("charts.example.com/stable/cert-manager")
	if got, err := chartRepo.ResolveTag(context.Background(), "1.15.0"); err != nil || got.Digest != d1 {
		t.Fatalf("chart tag 1.15.0: %v %v, want %s", got.Digest, err, d1)
	}
	// The layer is the archive, byte for byte.
	m, _ := v1c.Manifest()
	rc, err := chartRepo.OpenBlob(context.Background(), m.Layers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if st := s.sync.Status().Repos[0].Revisions[0]; len(st.Charts) != 2 || st.Images != 1 {
		t.Errorf("status lists %d charts and %d images, want 2 and 1: %+v", len(st.Charts), st.Images, st)
	} else if st.Charts[0].Name != "chart cert-manager 1.15.0 from "+repoURL || st.Charts[1].Name != "oci source oci://registry.example.com/manifests/app 1.0.0" {
		t.Errorf("charts in status: %+v", st.Charts)
	}

	// Revision 2 moves to a chart version with build metadata; rev1 is no
	// longer kept, so its chart goes with it.
	rev2 := s.commit(map[string]string{"a": "2"})
	helmrepo.PushBundle(t, s.up.Repo(s.bundles), rev2, helmrepo.ChartEntry(t, repoURL, v2c), helmrepo.Entry{Ref: "ghcr.io/org/app:v1", Image: img})
	res := s.pass()
	if res.Complete != 1 || res.Deleted != 1 {
		t.Fatalf("pass 2: %+v", res)
	}
	if rep := s.check(rev2); !rep.Complete() {
		t.Fatalf("rev2 not complete: %v", rep.Missing)
	}
	d2, _ := v2c.Digest()
	if got, err := chartRepo.ResolveTag(context.Background(), "1.16.0_build.1"); err != nil || got.Digest != d2 {
		t.Fatalf("chart tag 1.16.0_build.1: %v %v, want %s", got.Digest, err, d2)
	}
	for _, c := range []struct {
		repo string
		d    v1.Hash
	}{{"charts.example.com/stable/cert-manager", d1}, {"registry.example.com/manifests/app", must(src.Digest())}} {
		mt, _ := v1c.MediaType()
		if _, err := local(c.repo).FetchManifest(context.Background(), v1.Descriptor{Digest: c.d, MediaType: mt}); !errors.Is(err, transfer.ErrNotFound) {
			t.Errorf("%s@%s after retention: %v, want not found", c.repo, c.d, err)
		}
	}
	if _, err := chartRepo.OpenBlob(context.Background(), m.Layers[0], 0); err == nil {
		t.Errorf("rev1's chart layer survived garbage collection")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
