package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// helmForTest is a real helm v3 binary: $BALLAST_HELM, helm on PATH, or
// the one the e2e dependencies build caches.
func helmForTest(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BALLAST_HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache/ballast/e2e/helm-v3.22.0/helm")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	realtest.Missing(t, "helm", "make e2e-deps builds it (~/.cache/ballast/e2e/helm-*/helm), or set BALLAST_HELM")
	return ""
}

// kustomize helmCharts are inflated: ballast fetches each chart (so it is
// recorded and carried) into the chartHome where kustomize looks, and the
// helm binary templates it; a base's helmCharts too.
func TestKustomizeHelmCharts(t *testing.T) {
	helm := helmForTest(t)
	srv := helmrepo.Serve(t, webChart("1.15.0"), webChart("1.15.3"))
	reg := regserver.Start(t, regserver.Options{})
	pushChart(t, reg.Addr, helmrepo.Chart{Name: "db", Version: "2.0.0", Image: "ghcr.io/acme/db:2.0.0"})
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/kustomization.yaml": `resources: [../base, pod.yaml]
namespace: edge
helmCharts:
  - name: web
    repo: ` + srv.URL + `
    version: 1.15.3
    releaseName: web
    valuesInline: {sidecar: "docker.io/library/busybox:1.36.1"}
`,
		"app/pod.yaml":            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: nginx:1.27.1}]}\n",
		"base/kustomization.yaml": "helmCharts:\n  - {name: db, repo: \"oci://" + reg.Addr + "/charts\", version: 2.0.0, releaseName: db}\n",
	})
	f := &charts.Fetcher{}
	src := Source{Path: filepath.Join(root, "app"), RepoRoot: root, Charts: f, Kustomize: KustomizeOptions{HelmCommand: helm}}
	got, err := depImages(t, src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "ghcr.io/acme/db:2.0.0", "ghcr.io/acme/web:1.15.3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("images %q\nwant %q", got, want)
	}
	var resolved []string
	for _, r := range f.Resolved() {
		resolved = append(resolved, r.Chart+" "+r.Version)
	}
	sort.Strings(resolved)
	if want := []string{"db 2.0.0", "web 1.15.3"}; !reflect.DeepEqual(resolved, want) {
		t.Errorf("resolved %q, want %q", resolved, want)
	}
	// Where kustomize looks for them, as `helm pull --untar` leaves them.
	for _, p := range []string{"app/charts/web-1.15.3/web/Chart.yaml", "base/charts/db-2.0.0/db/Chart.yaml"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("chart not in place: %v", err)
		}
	}

	// Without a helm binary: an error that says what to do (no
	// --enable-helm, which ballast does not have).
	_, err = depImages(t, Source{Path: filepath.Join(root, "app"), RepoRoot: root, Charts: f,
		Kustomize: KustomizeOptions{HelmCommand: filepath.Join(root, "no-helm")}})
	if err == nil || !strings.Contains(err.Error(), "--helm-command") || strings.Contains(err.Error(), "enable-helm") {
		t.Errorf("without helm: %v", err)
	}
}
