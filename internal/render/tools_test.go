package render

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/ballast-dev/ballast/internal/images"
)

var kustomizeTree = map[string]string{
	"base/kustomization.yaml": "resources: [web.yaml, api.yaml]\n",
	"base/web.yaml":           deployment("web", "nginx:1.25"),
	"base/api.yaml":           deployment("api", "ghcr.io/acme/api:1.0"),
	"overlay/kustomization.yaml": "namePrefix: edge-\nresources: [../base]\nimages:\n" +
		"  - name: nginx\n    newTag: 1.27.1\n",
	"broken/kustomization.yaml":  "resources: [missing.yaml]\n",
	"outside/kustomization.yaml": "resources: [../base/web.yaml]\n",
	"badfield/kustomization.yml": "resources: []\nnoSuchField: 1\n",
}

func TestKustomize(t *testing.T) {
	root := writeTree(t, kustomizeTree)
	tests := []struct {
		name      string
		dir       string
		opts      KustomizeOptions
		want      []string
		wantNames []string // names of the objects holding want[0]
	}{
		{"base", "base", KustomizeOptions{},
			[]string{"docker.io/library/nginx:1.25", "ghcr.io/acme/api:1.0"}, []string{"web"}},
		{"overlay images: and namePrefix", "overlay", KustomizeOptions{},
			[]string{"docker.io/library/nginx:1.27.1", "ghcr.io/acme/api:1.0"}, []string{"edge-web"}},
		{"override an existing entry's tag", "overlay", KustomizeOptions{Images: []string{"nginx:1.27.2"}},
			[]string{"docker.io/library/nginx:1.27.2", "ghcr.io/acme/api:1.0"}, nil},
		{"override with a new name", "overlay", KustomizeOptions{Images: []string{"nginx=registry.example.com:5000/mirror/nginx:1.27.1"}},
			[]string{"ghcr.io/acme/api:1.0", "registry.example.com:5000/mirror/nginx:1.27.1"}, nil},
		{"add an entry with a digest", "overlay", KustomizeOptions{Images: []string{"ghcr.io/acme/api@sha256:" + strings.Repeat("ab", 32)}},
			[]string{"docker.io/library/nginx:1.27.1", "ghcr.io/acme/api@sha256:" + strings.Repeat("ab", 32)}, nil},
		{"keep the name, change the tag", "base", KustomizeOptions{Images: []string{"ghcr.io/acme/api=*:2.0"}},
			[]string{"docker.io/library/nginx:1.25", "ghcr.io/acme/api:2.0"}, nil},
		{"namePrefix and namespace overrides", "base", KustomizeOptions{NamePrefix: "site-", Namespace: "shop"},
			[]string{"docker.io/library/nginx:1.25", "ghcr.io/acme/api:1.0"}, []string{"site-web"}},
		{"load restrictor none reads files outside the directory", "outside", KustomizeOptions{LoadRestrictorNone: true},
			[]string{"docker.io/library/nginx:1.25"}, nil},
		{"patch from the Application", "base", KustomizeOptions{Patches: []map[string]any{{
			"target": map[string]any{"kind": "Deployment", "name": "api"},
			"patch":  "- op: replace\n  path: /spec/template/spec/containers/0/image\n  value: ghcr.io/acme/api:9.9\n",
		}}}, []string{"docker.io/library/nginx:1.25", "ghcr.io/acme/api:9.9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, list, err := imagesOf(t, Source{Path: filepath.Join(root, tt.dir), Kustomize: tt.opts})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.wantNames != nil {
				var names []string
				for _, l := range list[indexOf(list, tt.want[0])].Locations {
					names = append(names, l.Name)
				}
				if !reflect.DeepEqual(names, tt.wantNames) {
					t.Errorf("names %q, want %q", names, tt.wantNames)
				}
			}
		})
	}
	// The repository is never written.
	again := writeTree(t, kustomizeTree)
	for _, p := range []string{"overlay/kustomization.yaml", "base/kustomization.yaml"} {
		if readFile(t, filepath.Join(root, p)) != readFile(t, filepath.Join(again, p)) {
			t.Errorf("%s was modified", p)
		}
	}
}

func TestKustomizeOrigins(t *testing.T) {
	root := writeTree(t, kustomizeTree)
	objs, err := renderKustomize(t.Context(), Source{Path: filepath.Join(root, "overlay")})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, o := range objs {
		files[o.Name()] = o.File
		if meta, _ := o.Doc["metadata"].(map[string]any); meta["annotations"] != nil {
			t.Errorf("%s: annotations %v left on the object", o.Name(), meta["annotations"])
		}
	}
	want := map[string]string{
		"edge-web": filepath.Join(root, "overlay", "../base/web.yaml"),
		"edge-api": filepath.Join(root, "overlay", "../base/api.yaml"),
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files %v, want %v", files, want)
	}

	// A kustomization that asks for origin annotations keeps them.
	own := writeTree(t, map[string]string{
		"kustomization.yaml": "buildMetadata: [originAnnotations]\nresources: [p.yaml]\n",
		"p.yaml":             pod("p", "nginx"),
	})
	objs, err = renderKustomize(t.Context(), Source{Path: own})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].File != filepath.Join(own, "p.yaml") {
		t.Fatalf("objects %+v", objs)
	}
	annos, _ := objs[0].Doc["metadata"].(map[string]any)["annotations"].(map[string]any)
	if _, ok := annos[originAnnotation]; !ok {
		t.Errorf("origin annotation removed although the kustomization asked for it")
	}
}

func TestKustomizeErrors(t *testing.T) {
	root := writeTree(t, kustomizeTree)
	tests := []struct {
		dir  string
		opts KustomizeOptions
		want string
	}{
		{"broken", KustomizeOptions{}, "missing.yaml"},
		{"outside", KustomizeOptions{}, "security; file"},
		{"badfield", KustomizeOptions{}, "noSuchField"},
		{"base", KustomizeOptions{Images: []string{"nginx:"}}, "empty tag"},
		{"base", KustomizeOptions{Images: []string{"=x:1"}}, "want [name=]image"},
		{"base", KustomizeOptions{Images: []string{"nginx@"}}, "empty digest"},
	}
	for _, tt := range tests {
		_, _, err := imagesOf(t, Source{Path: filepath.Join(root, tt.dir), Kustomize: tt.opts})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %+v: error %v, want it to contain %q", tt.dir, tt.opts, err, tt.want)
		}
	}
}

func TestParseImageOverride(t *testing.T) {
	tests := []struct {
		in   string
		want imageOverride
	}{
		{"nginx:1.27", imageOverride{name: "nginx", newTag: "1.27"}},
		{"nginx@sha256:abc", imageOverride{name: "nginx", digest: "sha256:abc"}},
		{"nginx=ghcr.io/x/nginx:1", imageOverride{name: "nginx", newName: "ghcr.io/x/nginx", newTag: "1"}},
		{"nginx=ghcr.io/x/nginx", imageOverride{name: "nginx", newName: "ghcr.io/x/nginx"}},
		{"host:5000/a/b:2", imageOverride{name: "host:5000/a/b", newTag: "2"}},
		{"host:5000/a/b", imageOverride{name: "host:5000/a/b"}},
		{"a=*:3", imageOverride{name: "a", newTag: "3"}},
		{"a=a:3", imageOverride{name: "a", newTag: "3"}},
	}
	for _, tt := range tests {
		got, err := parseImageOverride(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

var helmTree = map[string]string{
	"app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\nappVersion: \"3.0\"\n" +
		"dependencies:\n  - name: cache\n    version: 1.0.0\n    repository: https://charts.example.com\n    condition: cache.enabled\n",
	"app/values.yaml": "image: {repository: ghcr.io/acme/app, tag: \"\"}\nsidecar: {enabled: false, image: busybox:1.36.1}\ncache: {enabled: false}\n",
	"app/templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-app, namespace: {{ .Release.Namespace }}}
spec:
  template:
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
        {{- if .Values.sidecar.enabled }}
        - name: sidecar
          image: {{ .Values.sidecar.image | quote }}
        {{- end }}
`,
	"app/templates/tests/test.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations: {helm.sh/hook: test}\nspec: {containers: [{name: t, image: 'curlimages/curl:8.10.1'}]}\n",
	"app/templates/NOTES.txt":       "thanks",
	"app/templates/monitor.yaml": "{{- if .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" }}\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: exporter}\nspec: {containers: [{name: e, image: 'quay.io/prometheus/node-exporter:v1.8.2'}]}\n{{- end }}\n",
	"app/templates/new.yaml": "{{- if semverCompare \">=1.99.0\" .Capabilities.KubeVersion.Version }}\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: future}\nspec: {containers: [{name: f, image: 'ghcr.io/acme/future:1'}]}\n{{- end }}\n",
	"app/crds/widget.yaml":         "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.acme.io}\n",
	"app/charts/cache/Chart.yaml":  "apiVersion: v2\nname: cache\nversion: 1.0.0\n",
	"app/charts/cache/values.yaml": "image: redis:7.4.1\n",
	"app/charts/cache/templates/s.yaml": "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: {{ .Release.Name }}-cache}\n" +
		"spec: {template: {spec: {containers: [{name: redis, image: {{ .Values.image | quote }}}]}}}\n",
	"app/edge-values.yaml":     "image: {tag: \"3.1\"}\ncache: {enabled: true}\n",
	"nodeps/Chart.yaml":        "apiVersion: v2\nname: nodeps\nversion: 0.1.0\ndependencies:\n  - {name: db, version: 1.0.0, repository: https://charts.example.com}\n",
	"broken/Chart.yaml":        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
	"broken/templates/x.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ .Values.missing.deeper }}\n",
	"badyaml/Chart.yaml":       "apiVersion: v2\nname: badyaml\nversion: 0.1.0\n",
	"badyaml/templates/x.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   bad: indent\n",
}

func TestHelm(t *testing.T) {
	root := writeTree(t, helmTree)
	chart := filepath.Join(root, "app")
	tests := []struct {
		name string
		opts HelmOptions
		want []string
	}{
		{"defaults, appVersion as tag, test hooks included", HelmOptions{},
			[]string{"docker.io/curlimages/curl:8.10.1", "ghcr.io/acme/app:3.0"}},
		{"skip tests", HelmOptions{SkipTests: true}, []string{"ghcr.io/acme/app:3.0"}},
		{"values file enables the vendored dependency", HelmOptions{ValueFiles: []string{filepath.Join(chart, "edge-values.yaml")}, SkipTests: true},
			[]string{"docker.io/library/redis:7.4.1", "ghcr.io/acme/app:3.1"}},
		{"API versions and kube version gate templates", HelmOptions{APIVersions: []string{"monitoring.coreos.com/v1"}, KubeVersion: "v1.99.1", SkipTests: true},
			[]string{"ghcr.io/acme/app:3.0", "ghcr.io/acme/future:1", "quay.io/prometheus/node-exporter:v1.8.2"}},
		{"--set", HelmOptions{Set: []string{"image.tag=4.0,sidecar.enabled=true"}, SkipTests: true},
			[]string{"docker.io/library/busybox:1.36.1", "ghcr.io/acme/app:4.0"}},
		{"--set-string keeps a numeric tag a string", HelmOptions{SetString: []string{"image.tag=1.10"}, SkipTests: true},
			[]string{"ghcr.io/acme/app:1.10"}},
		{"--set wins over values files and inline values", HelmOptions{
			ValueFiles: []string{filepath.Join(chart, "edge-values.yaml")},
			Values:     []map[string]any{{"image": map[string]any{"tag": "5.0"}, "cache": map[string]any{"image": "redis:7.4.2"}}},
			Set:        []string{"image.repository=registry.example.com:5000/acme/app"}, SkipTests: true},
			[]string{"docker.io/library/redis:7.4.2", "registry.example.com:5000/acme/app:5.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := imagesOf(t, Source{Path: chart, Helm: tt.opts})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHelmPackagedDependency(t *testing.T) {
	root := writeTree(t, helmTree)
	// The same dependency vendored as `helm dependency build` leaves it: a .tgz.
	dep, err := loader.LoadDir(filepath.Join(root, "app/charts/cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "app/charts/cache")); err != nil {
		t.Fatal(err)
	}
	if _, err := chartutil.Save(dep, filepath.Join(root, "app/charts")); err != nil {
		t.Fatal(err)
	}
	got, _, err := imagesOf(t, Source{Path: filepath.Join(root, "app"), Helm: HelmOptions{Set: []string{"cache.enabled=true"}, SkipTests: true}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker.io/library/redis:7.4.1", "ghcr.io/acme/app:3.0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHelmReleaseAndLocations(t *testing.T) {
	root := writeTree(t, helmTree)
	chart := filepath.Join(root, "app")
	objs, err := renderHelm(t.Context(), Source{Path: chart, Helm: HelmOptions{ReleaseName: "rel", Namespace: "ns", Values: []map[string]any{{"cache": map[string]any{"enabled": true}}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range objs {
		got[o.Kind()+"/"+o.Name()] = o.File
		if o.Line != 0 {
			t.Errorf("%s: line %d, want 0 for rendered output", o.Name(), o.Line)
		}
	}
	want := map[string]string{
		"Deployment/rel-app":                       filepath.Join(chart, "templates/deploy.yaml"),
		"StatefulSet/rel-cache":                    filepath.Join(chart, "charts/cache/templates/s.yaml"),
		"Pod/rel-test":                             filepath.Join(chart, "templates/tests/test.yaml"),
		"CustomResourceDefinition/widgets.acme.io": filepath.Join(chart, "crds/widget.yaml"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("objects\n%v\nwant\n%v", got, want)
	}
	for _, o := range objs {
		if o.Kind() == "Deployment" && o.Namespace() != "ns" {
			t.Errorf("namespace %q, want ns", o.Namespace())
		}
	}
}

func TestHelmErrors(t *testing.T) {
	root := writeTree(t, helmTree)
	tests := []struct {
		dir  string
		opts HelmOptions
		want string
	}{
		{"nodeps", HelmOptions{}, "helm dependency build"},
		{"broken", HelmOptions{}, "broken/templates/x.yaml"},
		{"badyaml", HelmOptions{}, "templates/x.yaml"},
		{"app", HelmOptions{ValueFiles: []string{filepath.Join(root, "nope.yaml")}}, "nope.yaml"},
		{"app", HelmOptions{ValueFiles: []string{filepath.Join(root, "app/templates/deploy.yaml")}}, "values file"},
		{"app", HelmOptions{Set: []string{"a[=1"}}, "--set"},
		{"app", HelmOptions{KubeVersion: "not-a-version"}, "kube version"},
		{"app", HelmOptions{Set: []string{"image.tag=Bad Tag"}}, "Deployment/release-name-app"},
	}
	for _, tt := range tests {
		_, _, err := imagesOf(t, Source{Path: filepath.Join(root, tt.dir), Helm: tt.opts})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %+v: error %v, want it to contain %q", tt.dir, tt.opts, err, tt.want)
		}
	}
}

func indexOf(list []images.Image, ref string) int {
	for i, img := range list {
		if img.Ref == ref {
			return i
		}
	}
	return -1
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
