package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

func chartApp(t *testing.T, sourceYAML string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "app.yaml")
	app := "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: certs, namespace: argocd}\nspec:\n  project: default\n  destination: {namespace: cert-manager, server: https://kubernetes.default.svc}\n  source:\n" + sourceYAML
	if err := os.WriteFile(file, []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestImagesAppChartFromHelmRepository(t *testing.T) {
	mk := func(v string) helmrepo.Chart {
		return helmrepo.Chart{Name: "cert-manager", Version: v, Image: "quay.io/jetstack/cert-manager-controller:v" + v}
	}
	srv := helmrepo.Serve(t, mk("1.15.0"), mk("1.15.3"), mk("1.16.1"))
	app := chartApp(t, "    {repoURL: "+srv.URL+", chart: cert-manager, targetRevision: 1.15.x}\n")
	cache := t.TempDir()

	out, errOut, code := runCLI(t, "images", "--app", app, "--chart-cache", cache, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Images []struct {
			Ref string `json:"image"`
		}
		Charts []charts.Resolved
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(srv.Dir, "cert-manager-1.15.3.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	wantChart := charts.Resolved{RepoURL: srv.URL, Chart: "cert-manager", TargetRevision: "1.15.x", Version: "1.15.3",
		Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data)), URL: srv.URL + "/cert-manager-1.15.3.tgz"}
	if len(got.Charts) != 1 || got.Charts[0] != wantChart {
		t.Errorf("charts %+v\nwant %+v", got.Charts, wantChart)
	}
	if len(got.Images) != 1 || got.Images[0].Ref != "quay.io/jetstack/cert-manager-controller:v1.15.3" {
		t.Errorf("images %+v", got.Images)
	}

	// Offline: the repository is gone, the cache answers.
	srv.Close()
	out, errOut, code = runCLI(t, "images", "--app", app, "--chart-cache", cache)
	if code != 0 || out != "quay.io/jetstack/cert-manager-controller:v1.15.3\n" {
		t.Fatalf("offline with the cache: exit %d, out %q, err %s", code, out, errOut)
	}
	// Without the cache, an unreachable repository is a failure (1), not
	// bad input, and prints nothing.
	out, errOut, code = runCLI(t, "images", "--app", app)
	if code != 1 || out != "" || !strings.Contains(errOut, srv.URL+"/index.yaml") {
		t.Fatalf("offline without a cache: exit %d, out %q, err %s", code, out, errOut)
	}
}

// Sources ballast does not render are exit 2 naming the source, never an
// empty list with exit 0.
func TestImagesAppSourcesNotRendered(t *testing.T) {
	srv := helmrepo.Serve(t, helmrepo.Chart{Name: "cert-manager", Version: "1.15.0", Image: "x"})
	reg := regserver.Start(t, regserver.Options{})
	layer := helmrepo.TarGz(t, map[string]string{"a.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: nginx:1.27.1}]}\n"})
	helmrepo.PushSource(t, reg.Addr+"/manifests/two:1.0.0", layer, layer)
	helmrepo.PushSource(t, reg.Addr+"/manifests/one:1.0.0", layer)
	out, errOut, code := runCLI(t, "images", "--app", chartApp(t, "    {repoURL: oci://"+reg.Addr+"/manifests/one, targetRevision: 1.0.0, path: .}\n"))
	if code != 0 || out != "docker.io/library/nginx:1.27.1\n" {
		t.Fatalf("OCI source: exit %d, out %q, err %s", code, out, errOut)
	}
	for _, tt := range []struct {
		name, source, want string
	}{
		{"OCI source with two layers", "    {repoURL: oci://" + reg.Addr + "/manifests/two, targetRevision: 1.0.0, path: .}\n",
			"OCI source oci://" + reg.Addr + "/manifests/two"},
		{"OCI source with an unknown tag", "    {repoURL: oci://" + reg.Addr + "/manifests/one, targetRevision: 9.0.0, path: .}\n",
			"OCI source oci://" + reg.Addr + "/manifests/one: get " + reg.Addr + "/manifests/one:9.0.0"},
		{"unknown source kind (a path that is not there)", "    {repoURL: https://git.example.com/x.git, path: nope}\n", `path "nope": no such directory`},
		{"plugin", "    {repoURL: https://git.example.com/x.git, path: ., plugin: {name: cdk8s}}\n", "plugins are not supported"},
		{"jsonnet", "    {repoURL: https://git.example.com/x.git, path: ., directory: {jsonnet: {tlas: [{name: a, value: b}]}}}\n", "jsonnet is not supported"},
		{"unknown chart", "    {repoURL: " + srv.URL + ", chart: nope, targetRevision: 1.0.0}\n", `no chart "nope" in ` + srv.URL + "/index.yaml"},
		{"unknown version", "    {repoURL: " + srv.URL + ", chart: cert-manager, targetRevision: 9.9.9}\n", srv.URL + "/index.yaml"},
		{"unresolvable range", "    {repoURL: " + srv.URL + ", chart: cert-manager, targetRevision: ~2.0}\n", `matches "~2.0"`},
		{"chart over the limit", "    {repoURL: " + srv.URL + ", chart: cert-manager, targetRevision: 1.15.0}\n", "larger than the limit of 64 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"images", "--app", chartApp(t, tt.source)}
			if strings.Contains(tt.name, "limit") {
				args = append(args, "--chart-max-bytes", "64")
			}
			out, errOut, code := runCLI(t, args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, out %q, err %s; want exit 2 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

// `ballast bundle` renders an Application whose chart comes from a Helm
// repository and carries the chart's image; a chart version that does not
// exist is exit 2 naming the repository, and nothing is pushed.
func TestBundleAppChartFromHelmRepository(t *testing.T) {
	f := newBundleFixture(t)
	srv := helmrepo.Serve(t, helmrepo.Chart{Name: "web", Version: "1.0.0", Image: f.reg.Repo("src/web") + ":1.0"})
	app := func(rev string) string {
		return "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec:\n  source: {repoURL: " + srv.URL + ", chart: web, targetRevision: \"" + rev + "\"}\n"
	}
	bundleWriteFiles(t, f.repo, map[string]string{"argocd/chart.yaml": app("1.0.x"), "argocd/bad.yaml": app("7.x")})
	bundleGit(t, f.repo, "add", ".")
	bundleGit(t, f.repo, "commit", "-q", "-m", "charts")

	to := f.reg.Repo("fleet/charts-bundles")
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to, "--app", "argocd/chart.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if len(r.Images) != 1 || !strings.Contains(r.Images[0].Ref, "src/web:1.0") {
		t.Fatalf("images %+v, want the chart's image", r.Images)
	}
	bad := f.reg.Repo("fleet/bad-charts")
	_, errOut, code = runCLI(t, "bundle", "--repo", f.repo, "--to", bad, "--app", "argocd/bad.yaml")
	if code != 2 || !strings.Contains(errOut, srv.URL+"/index.yaml") || !strings.Contains(errOut, `"7.x"`) {
		t.Fatalf("unknown version: exit %d, stderr %s", code, errOut)
	}
	rc, err := registryclient.New(bad, registryclient.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Resolve(context.Background(), bundleGit(t, f.repo, "rev-parse", "HEAD")); err == nil {
		t.Fatal("a bundle was pushed despite the unknown chart version")
	}
}
