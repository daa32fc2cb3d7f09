package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
)

// helmPushChart packages c and pushes it to repo/<name>:<version> with
// Helm's registry client, as `helm push` does; it returns the archive.
func helmPushChart(t testing.TB, repo string, c helmrepo.Chart) []byte {
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
    - {repoURL: https://git.example.com/fleet/apps.git, path: charts/app}
`
	// A chart in git whose dependency is not vendored: fetched, rendered
	// and carried too.
	bundleWriteFiles(t, f.repo, map[string]string{"argocd/stack.yaml": app,
		"charts/app/Chart.yaml":  "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n  - {name: web, version: 0.9.0, repository: \"" + srv.URL + "\"}\n",
		"charts/app/values.yaml": "web: {image: " + f.reg.Repo("src/web") + ":1.0}\n"})
	bundleGit(t, f.repo, "add", ".")
	bundleGit(t, f.repo, "commit", "-q", "-m", "charts")
	sha := bundleGit(t, f.repo, "rev-parse", "HEAD")

	to := f.reg.Repo("fleet/stack-bundles")
	lay := filepath.Join(t.TempDir(), "layout")
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to, "--oci-layout", lay, "--app", "argocd/stack.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if len(r.Charts) != 4 || r.ChartBytes <= int64(len(ociArchive)) {
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
	web09Tgz, err := os.ReadFile(filepath.Join(srv.Dir, "web-0.9.0.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	want := map[string]struct {
		chart   bundle.Chart
		archive []byte // the chart layer, byte for byte
	}{
		host + "/web:1.0.0": {bundle.Chart{RepoURL: srv.URL, Name: "web", Version: "1.0.0"}, webTgz},
		host + "/web:0.9.0": {bundle.Chart{RepoURL: srv.URL, Name: "web", Version: "0.9.0"}, web09Tgz},
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
	if seen != 4 {
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
	if inLayout != 4 {
		t.Errorf("layout: %d chart entries, want 4", inLayout)
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

// tgz builds a gzipped tar from entries (name → content; a "->" in the
// content makes a symlink to what follows).
func tgz(t *testing.T, entries [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg}
		if target, ok := strings.CutPrefix(e[1], "->"); ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Bad chart input is exit 2 naming the URL or file, and nothing at all
// reaches the bundles repository: no image, no chart, no index.
func TestBundleChartsBadInput(t *testing.T) {
	f := newBundleFixture(t)
	good := helmrepo.Serve(t, helmrepo.Chart{Name: "web", Version: "1.0.0", Image: f.reg.Repo("src/web") + ":1.0"})
	chartYAML := "apiVersion: v2\nname: evil\nversion: 1.0.0\n"
	files := map[string][]byte{
		"/bad/index.yaml":      []byte("apiVersion: v1\nentries: [this is not a map\n"),
		"/evil/index.yaml":     []byte("apiVersion: v1\nentries:\n  evil:\n    - {name: evil, version: 1.0.0, apiVersion: v2, urls: [evil-1.0.0.tgz]}\n  link:\n    - {name: link, version: 1.0.0, apiVersion: v2, urls: [link-1.0.0.tgz]}\n"),
		"/evil/evil-1.0.0.tgz": tgz(t, [][2]string{{"evil/Chart.yaml", chartYAML}, {"evil/../../etc/cron.d/x", "boom"}}),
		"/evil/link-1.0.0.tgz": tgz(t, [][2]string{{"link/Chart.yaml", strings.ReplaceAll(chartYAML, "evil", "link")}, {"link/templates/x.yaml", "->/etc/passwd"}}),
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(bad.Close)

	for i, tt := range []struct {
		name, source string
		args         []string
		want         []string
	}{
		{"unknown chart", "{repoURL: " + good.URL + ", chart: nope, targetRevision: 1.0.0}", nil, []string{good.URL + "/index.yaml", `"nope"`}},
		{"unknown version", "{repoURL: " + good.URL + ", chart: web, targetRevision: 3.0.0}", nil, []string{good.URL + "/index.yaml", "3.0.0"}},
		{"unresolvable range", "{repoURL: " + good.URL + ", chart: web, targetRevision: ~2.0}", nil, []string{good.URL + "/index.yaml", `"~2.0"`}},
		{"malformed index", "{repoURL: " + bad.URL + "/bad, chart: web, targetRevision: 1.0.0}", nil, []string{bad.URL + "/bad/index.yaml", "malformed index"}},
		{"archive leaving the chart", "{repoURL: " + bad.URL + "/evil, chart: evil, targetRevision: 1.0.0}", nil, []string{bad.URL + "/evil/evil-1.0.0.tgz", "path leaves the chart"}},
		{"archive with a link", "{repoURL: " + bad.URL + "/evil, chart: link, targetRevision: 1.0.0}", nil, []string{bad.URL + "/evil/link-1.0.0.tgz", "links are refused"}},
		{"chart over the limit", "{repoURL: " + good.URL + ", chart: web, targetRevision: 1.0.0}", []string{"--chart-max-bytes", "100"}, []string{good.URL + "/web-1.0.0.tgz", "larger than the limit of 100 bytes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := fmt.Sprintf("argocd/bad%d.yaml", i)
			bundleWriteFiles(t, f.repo, map[string]string{file: "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: bad}\nspec:\n  sources:\n    - {repoURL: https://git.example.com/x.git, path: apps/web}\n    - " + tt.source + "\n"})
			bundleGit(t, f.repo, "add", ".")
			bundleGit(t, f.repo, "commit", "-q", "-m", tt.name)
			to := f.reg.Repo(fmt.Sprintf("fleet/bad%d", i))
			out, errOut, code := runCLI(t, append([]string{"bundle", "--repo", f.repo, "--to", to, "--app", file}, tt.args...)...)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, out %q, stderr %s; want exit 2", code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %s\nwant it to name %q", errOut, w)
				}
			}
			// The repository was never written: not even an image blob.
			repo, err := name.NewRepository(to, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if tags, err := remote.List(repo); err == nil || len(tags) > 0 {
				t.Errorf("bundles repository %s exists after bad input (tags %v)", to, tags)
			}
			if _, err := os.Stat(filepath.Join(f.reg.DataDir(), "docker/registry/v2/repositories", "fleet", fmt.Sprintf("bad%d", i))); err == nil {
				t.Errorf("registry storage has fleet/bad%d: something was pushed", i)
			}
		})
	}
}
