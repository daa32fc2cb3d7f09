package render

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/images"
)

// appRepo is a checkout with one app of each kind.
func appRepo(t *testing.T) string {
	t.Helper()
	files := map[string]string{
		"apps/plain/a.yaml":                pod("a", "nginx:1.27.1"),
		"apps/plain/sub/b.yaml":            pod("b", "redis:7.4.1"),
		"apps/plain/$ARGOCD_APP_NAME.yaml": pod("literal", "busybox:1.36.1"),
		"envs/edge/values.yaml":            "image: {tag: \"3.2\"}\n",
	}
	for k, v := range kustomizeTree {
		files["kust/"+k] = v
	}
	for k, v := range helmTree {
		files["charts/"+k] = v
	}
	root := writeTree(t, files)
	if err := os.Mkdir(filepath.Join(root, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func application(name, spec string) string {
	return "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: " + name + "\n  namespace: argocd\nspec:\n  project: fleet\n  destination: {namespace: prod, server: https://kubernetes.default.svc}\n" + spec
}

// renderApp writes the Application into the repository and renders it as
// `ballast images --app` does.
func renderApp(t *testing.T, root, app string, env map[string]string) ([]string, []images.Image, []string, error) {
	t.Helper()
	return renderAppOpts(t, root, app, AppOptions{Env: env})
}

// renderAppOpts is renderApp with more options (RepoRoot is found).
func renderAppOpts(t *testing.T, root, app string, opts AppOptions) ([]string, []images.Image, []string, error) {
	t.Helper()
	file := filepath.Join(root, "argocd", "app.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	apps, err := LoadApplications(file)
	if err != nil {
		return nil, nil, nil, err
	}
	repoRoot, err := FindRepoRoot(file)
	if err != nil || repoRoot != root {
		t.Fatalf("FindRepoRoot = %q, %v; want %q", repoRoot, err, root)
	}
	var s images.Set
	var missing []string
	for _, a := range apps {
		opts.RepoRoot = repoRoot
		srcs, miss, err := a.RenderSources(opts)
		if err != nil {
			return nil, nil, nil, err
		}
		missing = append(missing, miss...)
		for _, src := range srcs {
			objs, err := Render(context.Background(), src)
			if err != nil {
				return nil, nil, nil, err
			}
			for _, o := range objs {
				occ, err := images.Extract(o)
				if err != nil {
					return nil, nil, nil, err
				}
				s.AddAll(occ)
			}
		}
	}
	return s.Refs(), s.List(), missing, nil
}

const rev = "0123456789abcdef0123456789abcdef01234567"

func TestApplication(t *testing.T) {
	root := appRepo(t)
	tests := []struct {
		name, app   string
		env         map[string]string
		want        []string
		wantMissing []string
	}{
		{"directory, top level", application("plain", "  source: {repoURL: https://git.example.com/fleet.git, path: apps/plain}\n"), nil,
			[]string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1"}, nil},
		{"directory recurse, no substitution in include", application("plain", `  source:
    repoURL: https://git.example.com/fleet.git
    path: apps/plain
    directory: {recurse: true, include: "{$ARGOCD_APP_NAME.yaml,sub/*}"}
`), nil, []string{"docker.io/library/busybox:1.36.1", "docker.io/library/redis:7.4.1"}, nil},
		{"kustomize overlay with images and namePrefix from the app, revision substituted", application("shop", `  source:
    repoURL: https://git.example.com/fleet.git
    path: kust/overlay
    kustomize:
      namePrefix: site-
      images: ["ghcr.io/acme/api:$ARGOCD_APP_REVISION_SHORT", "nginx=registry.example.com:5000/$ARGOCD_APP_PROJECT_NAME/nginx:1.27.1"]
`), map[string]string{"ARGOCD_APP_REVISION": rev},
			[]string{"ghcr.io/acme/api:0123456", "registry.example.com:5000/fleet/nginx:1.27.1"}, nil},
		{"helm with valueFiles (substituted, missing ignored) and parameters", application("web", `  source:
    repoURL: https://git.example.com/fleet.git
    path: charts/app
    helm:
      skipTests: true
      valueFiles: [edge-values.yaml, /envs/$ARGOCD_APP_NAMESPACE/values.yaml]
      ignoreMissingValueFiles: true
      parameters:
        - {name: image.tag, value: "$ARGOCD_APP_REVISION_SHORT_8"}
`), map[string]string{"ARGOCD_APP_REVISION": rev},
			[]string{"docker.io/library/redis:7.4.1", "ghcr.io/acme/app:01234567"}, nil},
		{"helm value file path from the environment", application("web", `  source:
    repoURL: https://git.example.com/fleet.git
    path: charts/app
    helm:
      skipTests: true
      valueFiles: [/envs/$SITE/values.yaml]
`), map[string]string{"SITE": "edge"}, []string{"ghcr.io/acme/app:3.2"}, nil},
		{"helm valuesObject wins over values; forceString", application("web", `  source:
    repoURL: https://git.example.com/fleet.git
    path: charts/app
    helm:
      skipTests: true
      valueFiles: [edge-values.yaml]
      values: "cache: {image: 'redis:0.0.1'}"
      valuesObject: {cache: {image: "redis:7.4.2"}}
      parameters:
        - {name: image.tag, value: "$ARGOCD_APP_REVISION_SHORT", forceString: true}
`), map[string]string{"ARGOCD_APP_REVISION": "1234"},
			[]string{"docker.io/library/redis:7.4.2", "ghcr.io/acme/app:1234"}, nil},
		{"helm release name defaults to the app name", application("web", `  source:
    repoURL: https://git.example.com/fleet.git
    path: charts/app
    helm: {skipTests: true, parameters: [{name: image.repository, value: "ghcr.io/acme/$ARGOCD_APP_NAME"}]}
`), nil, []string{"ghcr.io/acme/web:3.0"}, nil},
		{"helm apiVersions from the Application", application("web", `  source:
    repoURL: https://git.example.com/fleet.git
    path: charts/app
    helm: {skipTests: true, apiVersions: [monitoring.coreos.com/v1], kubeVersion: "1.31.0"}
`), nil, []string{"ghcr.io/acme/app:3.0", "quay.io/prometheus/node-exporter:v1.8.2"}, nil},
		{"unset variable substitutes empty", application("web", `  source:
    repoURL: https://git.example.com/fleet.git
    path: charts/app
    helm: {skipTests: true, parameters: [{name: image.tag, value: "v$ARGOCD_APP_REVISION"}]}
`), nil, []string{"ghcr.io/acme/app:v"}, []string{"ARGOCD_APP_REVISION"}},
		{"multi-source with a $values ref", application("stack", `  sources:
    - {repoURL: https://git.example.com/config.git, targetRevision: main, ref: values}
    - repoURL: https://git.example.com/fleet.git
      path: charts/app
      helm:
        skipTests: true
        valueFiles: [$values/envs/edge/values.yaml]
    - {repoURL: https://git.example.com/fleet.git, path: kust/base}
    - {repoURL: https://git.example.com/fleet.git, path: apps/plain, directory: {recurse: true}}
`), nil, []string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.25", "docker.io/library/nginx:1.27.1",
			"docker.io/library/redis:7.4.1", "ghcr.io/acme/api:1.0", "ghcr.io/acme/app:3.2"}, nil},
		{"explicit directory type on a kustomize path", application("raw", `  source:
    repoURL: https://git.example.com/fleet.git
    path: kust/base
    directory: {include: "web.yaml"}
`), nil, []string{"docker.io/library/nginx:1.25"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, missing, err := renderApp(t, root, tt.app, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(missing, tt.wantMissing) {
				t.Errorf("missing variables %q, want %q", missing, tt.wantMissing)
			}
		})
	}
}

func TestApplicationSourceOverrideFiles(t *testing.T) {
	root := appRepo(t)
	// As Argo CD Image Updater writes them back to git.
	write := func(p, content string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kust/overlay/.argocd-source-shop.yaml", "kustomize:\n  images: [\"ghcr.io/acme/api:1.1\"]\npath: elsewhere\n")
	write("charts/app/.argocd-source.yaml", "helm:\n  parameters: [{name: image.tag, value: \"7.0\"}]\n")
	write("charts/app/.argocd-source-web.yaml", "helm:\n  skipTests: true\n")
	for _, tt := range []struct {
		app  string
		want []string
	}{
		{application("shop", "  source: {repoURL: https://git.example.com/fleet.git, path: kust/overlay}\n"),
			[]string{"docker.io/library/nginx:1.27.1", "ghcr.io/acme/api:1.1"}},
		{application("other", "  source: {repoURL: https://git.example.com/fleet.git, path: kust/overlay}\n"),
			[]string{"docker.io/library/nginx:1.27.1", "ghcr.io/acme/api:1.0"}},
		{application("web", "  source: {repoURL: https://git.example.com/fleet.git, path: charts/app}\n"),
			[]string{"ghcr.io/acme/app:7.0"}},
	} {
		got, _, _, err := renderApp(t, root, tt.app, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	write("charts/app/.argocd-source.yaml", "helm: [\n")
	if _, _, _, err := renderApp(t, root, application("web", "  source: {repoURL: https://git.example.com/fleet.git, path: charts/app}\n"), nil); err == nil || !strings.Contains(err.Error(), ".argocd-source.yaml") {
		t.Errorf("broken override file: error %v", err)
	}
}

func TestApplicationFileWithSeveralApps(t *testing.T) {
	root := appRepo(t)
	two := application("a", "  source: {repoURL: https://git.example.com/fleet.git, path: kust/base}\n") +
		"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated}\n---\n" +
		application("b", "  source: {repoURL: https://git.example.com/fleet.git, path: apps/plain}\n")
	got, list, _, err := renderApp(t, root, two, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.25", "docker.io/library/nginx:1.27.1", "ghcr.io/acme/api:1.0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if f := list[1].Locations[0].File; f != filepath.Join(root, "kust/base/web.yaml") {
		t.Errorf("kustomize location %q", f)
	}
}

func TestApplicationErrors(t *testing.T) {
	root := appRepo(t)
	src := func(s string) string { return application("bad", "  source:\n"+s) }
	tests := []struct {
		name, app, want string
	}{
		{"not an Application", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no Argo CD Application"},
		{"broken YAML", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\n bad\n", "app.yaml:"},
		{"no source", application("x", ""), "neither source nor sources"},
		{"path does not exist", src("    {repoURL: https://git.example.com/fleet.git, path: apps/nope}\n"), `path "apps/nope": no such directory`},
		{"path leaves the repository", src("    {repoURL: https://git.example.com/fleet.git, path: ../..}\n"), "leaves the repository"},
		{"chart from a Helm repository without a fetcher", src("    {repoURL: https://charts.example.com, chart: redis, targetRevision: 1.0.0}\n"), "chart redis 1.0.0 from https://charts.example.com: charts from repositories are not enabled"},
		{"OCI source without chart", src("    {repoURL: oci://registry.example.com/manifests, targetRevision: 1.0.0, path: .}\n"), "OCI source oci://registry.example.com/manifests: OCI sources are not enabled here"},
		{"plugin on a chart", src("    {repoURL: https://charts.example.com, chart: redis, targetRevision: 1.0.0, plugin: {name: x}}\n"), "plugins are not supported"},
		{"plugin", src("    {repoURL: https://git.example.com/fleet.git, path: apps/plain, plugin: {name: x}}\n"), "plugins are not supported"},
		{"two source types", src("    {repoURL: https://git.example.com/fleet.git, path: kust/base, helm: {releaseName: x}, directory: {recurse: true}}\n"), "more than one of"},
		{"remote value file", src("    {repoURL: https://git.example.com/fleet.git, path: charts/app, helm: {valueFiles: [https://example.com/v.yaml]}}\n"), "remote value files"},
		{"missing value file", src("    {repoURL: https://git.example.com/fleet.git, path: charts/app, helm: {valueFiles: [nope.yaml]}}\n"), `valueFiles "nope.yaml"`},
		{"value file outside the repository", src("    {repoURL: https://git.example.com/fleet.git, path: charts/app, helm: {valueFiles: [../../../etc/passwd]}}\n"), "leaves the repository"},
		{"unknown ref", src("    {repoURL: https://git.example.com/fleet.git, path: charts/app, helm: {valueFiles: [$nope/v.yaml]}}\n"), `no source has ref "nope"`},
		{"values are not substituted", src("    repoURL: https://git.example.com/fleet.git\n    path: charts/app\n    helm: {skipTests: true, values: \"image: {tag: $ARGOCD_APP_NAME}\"}\n"), "$ARGOCD_APP_NAME"},
		{"kustomization that fails", src("    {repoURL: https://git.example.com/fleet.git, path: kust/broken}\n"), "missing.yaml"},
		{"jsonnet settings", src("    {repoURL: https://git.example.com/fleet.git, path: apps/plain, directory: {jsonnet: {libs: [x]}}}\n"), "jsonnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := renderApp(t, root, tt.app, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestFindRepoRootWithoutGit(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.yaml")
	got, err := FindRepoRoot(file)
	// A temporary directory may itself sit in a checkout; accept any
	// ancestor holding .git, else the file's own directory.
	if err != nil || (got != dir && !isGitDir(got)) {
		t.Fatalf("FindRepoRoot = %q, %v", got, err)
	}
}

func isGitDir(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, ".git"))
	return err == nil
}
