package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
)

// helmPushChart packages c and pushes it to repo/<name>:<version> with
// Helm's registry client, as `helm push` does; it returns the archive.
func helmPushChart(t *testing.T, repo string, c helmrepo.Chart) []byte {
	t.Helper()
	data, err := os.ReadFile(helmrepo.Package(t, t.TempDir(), c))
	if err != nil {
		t.Fatal(err)
	}
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Push(data, repo+"/"+c.Name+":"+c.Version); err != nil {
		t.Fatalf("helm push: %v", err)
	}
	return data
}

// `ballast bundle` carries every chart and OCI source of an Application as
// bundle entries (docs/charts.md): the bundles repository alone then serves
// each chart to Helm's own client, and the annotations say what each is.
func TestBundleCarriesCharts(t *testing.T) {
	f := newBundleFixture(t)
	web := helmrepo.Chart{Name: "web", Version: "1.0.0", Image: f.reg.Repo("src/web") + ":1.0"}
	srv := helmrepo.Serve(t, web, helmrepo.Chart{Name: "web", Version: "0.9.0", Image: "never/used:1"})
	ociChart := helmrepo.Chart{Name: "db", Version: "2.1.0+build.7", Image: f.reg.Repo("src/db") + "@" + f.want[f.reg.Repo("src/db")+"@"+dbDigest(f)].String()}
	ociArchive := helmPushChart(t, f.reg.Repo("upstream/charts"), ociChart)
	srcLayer := helmrepo.TarGz(t, map[string]string{"pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec: {containers: [{name: t, image: " + f.reg.Repo("src/tool") + ":3}]}\n"})
	srcDigest := helmrepo.PushSource(t, f.reg.Repo("upstream/manifests/tools")+":v1", srcLayer)

	app := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: stack}
spec:
  destination: {namespace: stack}
  sources:
    - {repoURL: ` + srv.URL + `/, chart: web, targetRevision: "1.x"}
    - {repoURL: oci://` + f.reg.Repo("upstream/charts") + `, chart: db, targetRevision: ">=2.0.0"}
    - {repoURL: oci://` + f.reg.Repo("upstream/manifests/tools") + `, targetRevision: v1, path: .}
`
	bundleWriteFiles(t, f.repo, map[string]string{"argocd/stack.yaml": app})
	bundleGit(t, f.repo, "add", ".")
	bundleGit(t, f.repo, "commit", "-q", "-m", "charts")
	sha := bundleGit(t, f.repo, "rev-parse", "HEAD")

	to := f.reg.Repo("fleet/stack-bundles")
	lay := filepath.Join(t.TempDir(), "layout")
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to, "--oci-layout", lay, "--app", "argocd/stack.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if len(r.Charts) != 3 || r.ChartBytes <= int64(len(ociArchive)) {
		t.Fatalf("charts %+v (%d bytes), want 3", r.Charts, r.ChartBytes)
	}

	// The bundle index, read back from the bundles repository.
	ctx := context.Background()
	rc, err := registryclient.New(to, registryclient.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := rc.Resolve(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.FetchManifest(ctx, idxDesc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	webTgz, err := os.ReadFile(filepath.Join(srv.Dir, "web-1.0.0.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	want := map[string]struct {
		chart   bundle.Chart
		archive []byte // the chart layer, byte for byte
	}{
		host + "/web:1.0.0": {bundle.Chart{RepoURL: srv.URL, Name: "web", Version: "1.0.0"}, webTgz},
		f.reg.Repo("upstream/charts/db") + ":2.1.0_build.7": {bundle.Chart{RepoURL: "oci://" + f.reg.Repo("upstream/charts"), Name: "db", Version: "2.1.0+build.7"}, ociArchive},
		f.reg.Repo("upstream/manifests/tools") + ":v1":      {bundle.Chart{RepoURL: "oci://" + f.reg.Repo("upstream/manifests/tools"), Version: "v1"}, nil},
	}
	helm, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, im := range b.Images {
		if im.Chart == nil {
			continue
		}
		seen++
		w, ok := want[im.Ref.String()]
		if !ok || *im.Chart != w.chart {
			t.Errorf("entry %s: chart %+v, want %+v", im.Ref, im.Chart, w.chart)
			continue
		}
		if im.Chart.IsSource() {
			if im.Descriptor.Digest.String() != srcDigest {
				t.Errorf("OCI source stored as %s, upstream digest %s", im.Descriptor.Digest, srcDigest)
			}
			continue
		}
		if im.Descriptor.ArtifactType != bundle.HelmConfigMediaType {
			t.Errorf("%s: artifactType %q", im.Ref, im.Descriptor.ArtifactType)
		}
		// Helm pulls the chart from the bundles repository by digest.
		pulled, err := helm.Pull(to+"@"+im.Descriptor.Digest.String(), registry.PullOptWithChart(true))
		if err != nil {
			t.Errorf("helm pull %s@%s (%s): %v", to, im.Descriptor.Digest, im.Ref, err)
			continue
		}
		if !bytes.Equal(pulled.Chart.Data, w.archive) {
			t.Errorf("%s: the chart layer is not the upstream archive byte for byte", im.Ref)
		}
		chrt, err := loader.LoadArchive(bytes.NewReader(pulled.Chart.Data))
		if err != nil || chrt.Name() != im.Chart.Name || chrt.Metadata.Version != im.Chart.Version {
			t.Errorf("%s: loaded %v, %v", im.Ref, chrt, err)
		}
		var meta struct{ Name, Version string }
		if err := json.Unmarshal(pulled.Config.Data, &meta); err != nil || meta.Name != im.Chart.Name {
			t.Errorf("%s: config %s: %v", im.Ref, pulled.Config.Data, err)
		}
	}
	if seen != 3 {
		t.Errorf("%d chart entries in the bundle, want 3", seen)
	}

	// The OCI layout holds every chart entry with its blobs.
	l, err := layout.New(lay)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := l.Resolve(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	lraw, err := l.FetchManifest(ctx, ld)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := bundle.Parse(lraw)
	if err != nil {
		t.Fatal(err)
	}
	inLayout := 0
	for _, im := range lb.Images {
		if im.Chart == nil {
			continue
		}
		mraw, err := l.FetchManifest(ctx, im.Descriptor)
		if err != nil {
			t.Errorf("layout: %s: %v", im.Name(), err)
			continue
		}
		var m v1.Manifest
		if err := json.Unmarshal(mraw, &m); err != nil {
			t.Fatal(err)
		}
		for _, d := range append(m.Layers, m.Config) {
			if ok, err := l.BlobExists(ctx, d); err != nil || !ok {
				t.Errorf("layout: %s: blob %s missing (%v)", im.Name(), d.Digest, err)
			}
		}
		inLayout++
	}
	if inLayout != 3 {
		t.Errorf("layout: %d chart entries, want 3", inLayout)
	}

	// Deterministic: the same revision gives the same bundle, nothing new.
	r2, errOut, code := runBundle(t, "--repo", f.repo, "--to", to, "--app", "argocd/stack.yaml")
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut)
	}
	if r2.BundleDigest != r.BundleDigest || r2.BytesNew != 0 {
		t.Errorf("second run: bundle %s (first %s), %d new bytes", r2.BundleDigest, r.BundleDigest, r2.BytesNew)
	}
}

func dbDigest(f *bundleFixture) string {
	for ref, h := range f.want {
		if strings.Contains(ref, "src/db@") {
			return h.String()
		}
	}
	return ""
}
