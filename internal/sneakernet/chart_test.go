package sneakernet_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestExportImportCarriesCharts: a bundle holding a Helm-built chart in
// Helm's OCI form and an image crosses by file like any bundle: the chart
// lands under its reference with its tag, completeness covers it, and
// `helm pull`-able bytes (the layer) are the archive unchanged.
func TestExportImportCarriesCharts(t *testing.T) {
	w := newWorld(t)
	git(t, w.repo, "commit", "-q", "--allow-empty", "-m", "charts")
	sha := git(t, w.repo, "rev-parse", "HEAD")
	ch := helmrepo.PackageOCI(t, helmrepo.Chart{Name: "cert-manager", Version: "1.15.0", Image: "quay.io/jetstack/cert-manager-controller:v1.15.0"})
	img := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 1, 32<<10)
	helmrepo.PushBundle(t, w.up.Repo(w.bundles), sha,
		helmrepo.ChartEntry(t, "https://charts.example.com/stable", ch),
		helmrepo.Entry{Ref: "ghcr.io/org/app:v1", Image: img})

	out, _ := w.export(t, sha, "")
	res, err := sneakernet.Import(context.Background(), sneakernet.ImportOptions{
		File: out, Registry: w.edge.Addr, GitDir: w.edgeGit, RepoURL: "https://git.example.com/fleet/apps.git",
		RemoteOptions: []registryclient.Option{registryclient.WithAuth(w.edgeAuth()), registryclient.WithMountAnywhere(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Images != 1 || res.Charts != 1 {
		t.Fatalf("import: %d images, %d charts, want 1 and 1", res.Images, res.Charts)
	}
	if r := w.complete(t, sha); !r.Complete() {
		t.Fatalf("edge bundle incomplete: %v", r.Missing)
	}
	ref, _ := name.ParseReference(w.edge.Repo("charts.example.com/stable/cert-manager:1.15.0"), name.Insecure)
	got, err := remote.Image(ref, remote.WithAuth(w.edgeAuth()))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := got.Layers()
	if len(ls) != 1 {
		t.Fatalf("%d layers", len(ls))
	}
	d, _ := ls[0].Digest()
	if want, _, _ := v1.SHA256(bytes.NewReader(ch.Tgz)); d != want {
		t.Fatalf("layer %s is not the chart archive %s", d, want)
	}
}

func (w *world) edgeAuth() authn.Authenticator {
	return &authn.Basic{Username: w.edge.User, Password: w.edge.Password}
}
