package render

import (
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/registry"

	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// webChart is the chart the repository serves: its values file inside the
// chart turns on a sidecar.
func webChart(version string) helmrepo.Chart {
	return helmrepo.Chart{Name: "web", Version: version, Image: "ghcr.io/acme/web:" + version,
		Files: map[string]string{"values-edge.yaml": "sidecar: docker.io/library/busybox:1.36.1\n"}}
}

func TestApplicationChartFromHelmRepository(t *testing.T) {
	root := appRepo(t)
	srv := helmrepo.Serve(t, webChart("1.15.0"), webChart("1.15.3"), webChart("1.16.0"))
	tests := []struct {
		name, app string
		want      []string
	}{
		{"range resolved to the newest match", application("web", `  source:
    repoURL: `+srv.URL+`
    chart: web
    targetRevision: 1.15.x
`), []string{"ghcr.io/acme/web:1.15.3"}},
		{"exact version, value file inside the chart, parameter", application("web", `  source:
    repoURL: `+srv.URL+`/
    chart: web
    targetRevision: 1.15.0
    helm:
      valueFiles: [values-edge.yaml, missing.yaml]
      ignoreMissingValueFiles: true
      parameters: [{name: image, value: "ghcr.io/acme/web:$ARGOCD_APP_NAME"}]
`), []string{"docker.io/library/busybox:1.36.1", "ghcr.io/acme/web:web"}},
		{"valuesObject", application("web", `  source:
    repoURL: `+srv.URL+`
    chart: web
    targetRevision: "*"
    helm: {valuesObject: {sidecar: "quay.io/x/y:2"}}
`), []string{"ghcr.io/acme/web:1.16.0", "quay.io/x/y:2"}},
		{"multi-source: chart from the repository, $values from git", application("stack", `  sources:
    - {repoURL: https://git.example.com/config.git, targetRevision: main, ref: values}
    - repoURL: `+srv.URL+`
      chart: web
      targetRevision: ">=1.15.1 <1.16"
      helm:
        valueFiles: [$values/envs/edge/chart-values.yaml]
    - {repoURL: https://git.example.com/fleet.git, path: apps/plain}
`), []string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.2", "ghcr.io/acme/web:1.15.3"}},
	}
	if err := os.WriteFile(root+"/envs/edge/chart-values.yaml", []byte("sidecar: redis:7.4.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &charts.Fetcher{}
			got, list, _, err := renderAppOpts(t, root, tt.app, AppOptions{Charts: f})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(f.Resolved()) != 1 {
				t.Errorf("Resolved() = %+v, want one chart", f.Resolved())
			}
			for _, img := range list {
				for _, loc := range img.Locations {
					if strings.HasPrefix(img.Ref, "ghcr.io/acme/web") && !strings.HasPrefix(loc.File, srv.URL+"/web-") {
						t.Errorf("%s located at %q, want the chart's URL", img.Ref, loc.File)
					}
				}
			}
		})
	}

	for _, tt := range []struct{ name, app, want string }{
		{"value file leaving the chart", application("web", `  source: {repoURL: `+srv.URL+`, chart: web, targetRevision: 1.15.0, helm: {valueFiles: [../x.yaml]}}
`), "not a path inside the chart"},
		{"value file missing in the chart", application("web", `  source: {repoURL: `+srv.URL+`, chart: web, targetRevision: 1.15.0, helm: {valueFiles: [nope.yaml]}}
`), "nope.yaml: file does not exist in chart " + srv.URL + "/web-1.15.0.tgz"},
		{"chart and path", application("web", `  source: {repoURL: `+srv.URL+`, chart: web, path: charts/app, targetRevision: 1.15.0}
`), "both chart and path"},
		{"kustomize on a chart", application("web", `  source: {repoURL: `+srv.URL+`, chart: web, targetRevision: 1.15.0, kustomize: {namePrefix: x}}
`), "helm settings only"},
		{"unknown version", application("web", `  source: {repoURL: `+srv.URL+`, chart: web, targetRevision: 2.x}
`), "no version of \"web\" in " + srv.URL + "/index.yaml matches \"2.x\""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := renderAppOpts(t, root, tt.app, AppOptions{Charts: &charts.Fetcher{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestApplicationOCIChart(t *testing.T) {
	root := appRepo(t)
	reg := regserver.Start(t, regserver.Options{})
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"0.9.0", "1.0.1"} {
		data, err := os.ReadFile(helmrepo.Package(t, t.TempDir(), webChart(v)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Push(data, reg.Addr+"/charts/web:"+v); err != nil {
			t.Fatal(err)
		}
	}
	for _, repoURL := range []string{"oci://" + reg.Addr + "/charts", reg.Addr + "/charts"} {
		t.Run(repoURL, func(t *testing.T) {
			f := &charts.Fetcher{}
			got, _, _, err := renderAppOpts(t, root, application("web", `  source:
    repoURL: `+repoURL+`
    chart: web
    targetRevision: ^1.0.0
    helm: {valueFiles: [values-edge.yaml]}
`), AppOptions{Charts: f})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"docker.io/library/busybox:1.36.1", "ghcr.io/acme/web:1.0.1"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
			if res := f.Resolved(); len(res) != 1 || res[0].Version != "1.0.1" || !strings.HasPrefix(res[0].Digest, "sha256:") {
				t.Errorf("Resolved() = %+v", res)
			}
		})
	}
}

func TestApplicationOCISource(t *testing.T) {
	root := appRepo(t)
	reg := regserver.Start(t, regserver.Options{})
	deploy := func(img string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gb}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: " + img + "}]\n"
	}
	helmrepo.PushSource(t, reg.Addr+"/manifests/guestbook:1.0.0", helmrepo.TarGz(t, map[string]string{
		"guestbook/deploy.yaml":                  deploy("nginx:1.27.1"),
		"guestbook/kustomize/kustomization.yaml": "resources: [deploy.yaml]\nimages: [{name: redis, newTag: \"7.4.3\"}]\n",
		"guestbook/kustomize/deploy.yaml":        deploy("redis:7.0"),
	}))
	for _, tt := range []struct {
		name, source string
		want         []string
	}{
		{"directory", "{repoURL: oci://" + reg.Addr + "/manifests/guestbook, targetRevision: 1.0.0, path: guestbook}", []string{"docker.io/library/nginx:1.27.1"}},
		{"kustomize, range", "{repoURL: oci://" + reg.Addr + "/manifests/guestbook, targetRevision: 1.x, path: guestbook/kustomize}", []string{"docker.io/library/redis:7.4.3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &charts.Fetcher{}
			got, list, _, err := renderAppOpts(t, root, application("gb", "  source: "+tt.source+"\n"), AppOptions{Charts: f})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if loc := list[0].Locations[0].File; !strings.HasPrefix(loc, "oci://"+reg.Addr+"/manifests/guestbook:1.0.0/guestbook/") {
				t.Errorf("location %q, want it inside the artifact", loc)
			}
		})
	}
	_, _, _, err := renderAppOpts(t, root, application("gb", "  source: {repoURL: oci://"+reg.Addr+"/manifests/guestbook, targetRevision: 1.0.0, path: nope}\n"), AppOptions{Charts: &charts.Fetcher{}})
	if err == nil || !strings.Contains(err.Error(), `path "nope": no such directory in oci://`+reg.Addr+"/manifests/guestbook:1.0.0") {
		t.Errorf("missing path: %v", err)
	}
}
