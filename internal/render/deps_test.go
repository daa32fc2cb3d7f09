package render

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/registry"

	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func depImages(t *testing.T, src Source) ([]string, error) {
	t.Helper()
	objs, err := Render(context.Background(), src)
	if err != nil {
		return nil, err
	}
	var set images.Set
	for _, o := range objs {
		occ, err := images.Extract(o)
		if err != nil {
			t.Fatal(err)
		}
		set.AddAll(occ)
	}
	return set.Refs(), nil
}

// Dependencies that are not vendored are fetched as `helm dependency
// build` would: Chart.lock's version when it pins one, else the range;
// from an HTTP repository, an OCI registry or a file:// path; and a
// fetched chart's own dependencies too. Each fetched chart is recorded.
func TestChartDependenciesNotVendored(t *testing.T) {
	srv := helmrepo.Serve(t, webChart("1.15.0"), webChart("1.15.3"),
		helmrepo.Chart{Name: "mid", Version: "0.1.0", Image: "ghcr.io/acme/mid:0.1", Files: map[string]string{
			"Chart.yaml": "apiVersion: v2\nname: mid\nversion: 0.1.0\ndependencies:\n  - {name: web, version: 1.15.3, repository: REPO}\n"}})
	// The mid chart names its own dependency's repository: rewrite it now
	// that the server's URL is known.
	midTgz := filepath.Join(srv.Dir, "mid-0.1.0.tgz")
	if err := os.Remove(midTgz); err != nil {
		t.Fatal(err)
	}
	helmrepo.Package(t, srv.Dir, helmrepo.Chart{Name: "mid", Version: "0.1.0", Image: "ghcr.io/acme/mid:0.1", Files: map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: mid\nversion: 0.1.0\ndependencies:\n  - {name: web, version: 1.15.3, repository: " + srv.URL + "}\n"}})
	srv.Reindex(t)
	reg := regserver.Start(t, regserver.Options{})
	pushChart(t, reg.Addr, helmrepo.Chart{Name: "db", Version: "2.0.0", Image: "ghcr.io/acme/db:2.0.0"})
	pushChart(t, reg.Addr, helmrepo.Chart{Name: "db", Version: "2.1.0", Image: "ghcr.io/acme/db:2.1.0"})

	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"charts/app/Chart.yaml": `apiVersion: v2
name: app
version: 1.0.0
dependencies:
  - {name: web, version: "~1.15.0", repository: "` + srv.URL + `/"}
  - {name: db, version: ">=2.0.0", repository: "oci://` + reg.Addr + `/charts"}
  - {name: local, version: 0.1.0, repository: "file://../local"}
  - {name: mid, version: 0.1.0, repository: "` + srv.URL + `", alias: middle}
`,
		"charts/app/Chart.lock": `dependencies:
  - {name: web, version: 1.15.0, repository: "` + srv.URL + `/"}
  - {name: db, version: 2.0.0, repository: "oci://` + reg.Addr + `/other"}
digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
generated: "2026-11-01T00:00:00Z"
`,
		"charts/app/values.yaml":          "{}\n",
		"charts/app/templates/a.yaml":     "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec: {containers: [{name: a, image: ghcr.io/acme/app:1}]}\n",
		"charts/local/Chart.yaml":         "apiVersion: v2\nname: local\nversion: 0.1.0\n",
		"charts/local/templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: local}\nspec: {containers: [{name: a, image: ghcr.io/acme/local:1}]}\n",
	})
	f := &charts.Fetcher{}
	got, err := depImages(t, Source{Path: filepath.Join(root, "charts/app"), RepoRoot: root, Charts: f})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ghcr.io/acme/app:1",
		"ghcr.io/acme/db:2.1.0",   // the lock names another repository: the range decides
		"ghcr.io/acme/local:1",    // file://
		"ghcr.io/acme/mid:0.1",    // aliased
		"ghcr.io/acme/web:1.15.0", // pinned by Chart.lock, not the newest 1.15.3
		"ghcr.io/acme/web:1.15.3", // mid's own dependency
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("images %q\nwant %q", got, want)
	}
	var resolved []string
	for _, r := range f.Resolved() {
		resolved = append(resolved, r.Chart+" "+r.Version)
	}
	sort.Strings(resolved)
	if want := []string{"db 2.1.0", "mid 0.1.0", "web 1.15.0", "web 1.15.3"}; !reflect.DeepEqual(resolved, want) {
		t.Errorf("resolved %q, want %q", resolved, want)
	}

	// The same for a chart fetched from a repository: its dependencies.
	f2 := &charts.Fetcher{}
	got, err = depImages(t, Source{Type: Helm, Chart: &charts.Ref{RepoURL: srv.URL, Chart: "mid", TargetRevision: "0.1.0"}, Charts: f2})
	if err != nil || !reflect.DeepEqual(got, []string{"ghcr.io/acme/mid:0.1", "ghcr.io/acme/web:1.15.3"}) {
		t.Errorf("chart from a repository: %q, %v", got, err)
	}

	for _, tt := range []struct{ name, dep, want string }{
		{"repository name from helm repo add", "{name: x, version: 1.0.0, repository: \"@stable\"}", "names from `helm repo add`"},
		{"no repository", "{name: x, version: 1.0.0}", "names no repository"},
		{"file:// leaving the repository", "{name: x, version: 1.0.0, repository: \"file://../../../../../../x\"}", "leaves the repository"},
		{"unknown chart", "{name: nope, version: 1.0.0, repository: \"" + srv.URL + "\"}", srv.URL + "/index.yaml"},
		{"no version matches", "{name: web, version: \"~3.0\", repository: \"" + srv.URL + "\"}", `"~3.0"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(root, "bad", strings.NewReplacer(" ", "-", "/", "-").Replace(tt.name))
			writeFiles(t, dir, map[string]string{"Chart.yaml": "apiVersion: v2\nname: bad\nversion: 1.0.0\ndependencies:\n  - " + tt.dep + "\n"})
			_, err := depImages(t, Source{Path: dir, RepoRoot: root, Charts: &charts.Fetcher{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "dependency") {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// pushChart packages c and pushes it to addr/charts/<name>:<version> with
// Helm's registry client, as `helm push` does.
func pushChart(t *testing.T, addr string, c helmrepo.Chart) {
	t.Helper()
	data, err := os.ReadFile(helmrepo.Package(t, t.TempDir(), c))
	if err != nil {
		t.Fatal(err)
	}
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Push(data, addr+"/charts/"+c.Name+":"+c.Version); err != nil {
		t.Fatalf("helm push: %v", err)
	}
}
