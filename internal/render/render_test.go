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

// writeTree creates files (path -> content) under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// imagesOf renders src and returns the sorted, distinct references.
func imagesOf(t *testing.T, src Source) ([]string, []images.Image, error) {
	t.Helper()
	objs, err := Render(context.Background(), src)
	if err != nil {
		return nil, nil, err
	}
	var s images.Set
	for _, o := range objs {
		occ, err := images.Extract(o)
		if err != nil {
			return nil, nil, err
		}
		s.AddAll(occ)
	}
	return s.Refs(), s.List(), nil
}

func pod(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec: {containers: [{name: c, image: '" + image + "'}]}\n"
}

func deployment(name, image string) string {
	return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name + "}\nspec:\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: {labels: {app: " + name + "}}\n    spec:\n      containers: [{name: " + name + ", image: '" + image + "'}]\n"
}

func TestDetect(t *testing.T) {
	tests := []struct {
		files map[string]string
		want  Type
	}{
		{map[string]string{"kustomization.yaml": "resources: []"}, Kustomize},
		{map[string]string{"kustomization.yml": "resources: []"}, Kustomize},
		{map[string]string{"Kustomization": "resources: []"}, Kustomize},
		{map[string]string{"Chart.yaml": "name: x"}, Helm},
		{map[string]string{"Chart.yaml": "name: x", "kustomization.yaml": ""}, Kustomize}, // Argo CD checks Kustomize first
		{map[string]string{"a.yaml": ""}, Directory},
		{map[string]string{"chart.yaml": "", "sub/Chart.yaml": ""}, Directory},
	}
	for _, tt := range tests {
		got, err := Detect(writeTree(t, tt.files))
		if err != nil || got != tt.want {
			t.Errorf("%v: got %q, %v; want %q", tt.files, got, err, tt.want)
		}
	}
}

func TestDirectory(t *testing.T) {
	root := writeTree(t, map[string]string{
		"a.yaml":              deployment("web", "nginx:1.27.1") + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
		"list.yaml":           "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(pod("list", "busybox:1.36.1"), "\n", "\n  "),
		"c.json":              `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"r","image":"redis:7.4.1"}]}}`,
		"values.yaml":         "image:\n  repository: not/an-object\n",
		"ci.yml":              "stages: [build]\n",
		"skip.yaml":           "# +argocd:skip-file-rendering\n" + pod("skipped", "skipped:1"),
		"notes.txt":           pod("txt", "txt:1"),
		"sub/d.yaml":          "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: 'alpine:3.20'}]}}}}}\n",
		"sub/deeper/e.yml":    "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec: {template: {spec: {containers: [{name: c, image: 'ghcr.io/acme/r:1'}]}}}\n",
		"sub/deeper/f.jsonet": "not a manifest extension",
	})
	tests := []struct {
		name string
		opts DirectoryOptions
		want []string
	}{
		{"top level only", DirectoryOptions{},
			[]string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
		{"recurse", DirectoryOptions{Recurse: true},
			[]string{"docker.io/library/alpine:3.20", "docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1", "ghcr.io/acme/r:1"}},
		{"include matches across directories", DirectoryOptions{Recurse: true, Include: "*.yml"},
			[]string{"ghcr.io/acme/r:1"}},
		{"include alternatives", DirectoryOptions{Include: "{a.yaml,c.json}"},
			[]string{"docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
		{"exclude subtree", DirectoryOptions{Recurse: true, Exclude: "sub/*"},
			[]string{"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
		{"exclude and include", DirectoryOptions{Recurse: true, Include: "*.y*ml", Exclude: "{list.yaml,sub/deeper/*}"},
			[]string{"docker.io/library/alpine:3.20", "docker.io/library/nginx:1.27.1"}},
		{"character class", DirectoryOptions{Recurse: true, Include: "[ac].*"},
			[]string{"docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := imagesOf(t, Source{Path: root, Directory: tt.opts})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDirectoryLocations(t *testing.T) {
	root := writeTree(t, map[string]string{"m.yaml": "# two objects\n" + pod("a", "nginx") + "---\n" + pod("b", "nginx")})
	_, list, err := imagesOf(t, Source{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	locs := list[0].Locations
	if len(locs) != 2 || locs[0].File != filepath.Join(root, "m.yaml") || locs[0].Line != 2 || locs[1].Line != 7 || locs[1].Name != "b" {
		t.Errorf("locations %+v", locs)
	}
}

func TestDirectoryErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		opts  DirectoryOptions
		want  string
	}{
		{"broken manifest", map[string]string{"bad.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n name: b\n"}, DirectoryOptions{}, "bad.yaml:4: "},
		{"valid then broken document", map[string]string{"two.yaml": pod("a", "nginx") + "---\n- just\n- a list\n"}, DirectoryOptions{}, "two.yaml:6: document is a list"},
		{"object without kind after objects", map[string]string{"k.yaml": pod("a", "nginx") + "---\nmetadata: {name: x}\n"}, DirectoryOptions{}, "k.yaml:6: document has no kind"},
		{"broken JSON", map[string]string{"x.json": "{\"kind\": \"Pod\",\n}"}, DirectoryOptions{}, "x.json:2: "},
		{"JSON without kind", map[string]string{"x.json": `{"a": 1}`}, DirectoryOptions{}, "x.json:1: document has no kind"},
		{"jsonnet", map[string]string{"x.jsonnet": "{}"}, DirectoryOptions{}, "jsonnet is not supported"},
		{"bad include glob", map[string]string{"a.yaml": ""}, DirectoryOptions{Include: "[a"}, "directory include"},
		{"bad exclude glob", map[string]string{"a.yaml": ""}, DirectoryOptions{Exclude: "{a,b"}, "directory exclude"},
		{"invalid image in a subdirectory", map[string]string{"s/p.yaml": pod("p", "Bad:Ref")}, DirectoryOptions{Recurse: true}, "p.yaml:1: Pod/p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := imagesOf(t, Source{Path: writeTree(t, tt.files), Directory: tt.opts})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDirectorySymlinkOutsideRepo(t *testing.T) {
	outside := writeTree(t, map[string]string{"secret.yaml": pod("x", "nginx")})
	root := writeTree(t, map[string]string{"a.yaml": pod("a", "nginx")})
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(root, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	_, _, err := imagesOf(t, Source{Path: root})
	if err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Fatalf("error %v, want symlink refusal", err)
	}
}

func TestDirectorySymlinkInsideRepo(t *testing.T) {
	root := writeTree(t, map[string]string{"shared/p.yaml": pod("shared", "nginx:1"), "app/a.yaml": pod("a", "redis:7")})
	if err := os.Symlink("../shared/p.yaml", filepath.Join(root, "app", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	// Relative paths, as a user types them.
	got, _, err := imagesOf(t, Source{Path: "app", RepoRoot: "."})
	if err != nil || !reflect.DeepEqual(got, []string{"docker.io/library/nginx:1", "docker.io/library/redis:7"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	// The same link is outside when the source itself is the boundary.
	if _, _, err := imagesOf(t, Source{Path: "app"}); err == nil {
		t.Fatal("symlink outside the source without a repo root: want an error")
	}
}

func TestFileSource(t *testing.T) {
	root := writeTree(t, map[string]string{"one.yaml": pod("a", "nginx:1"), "values.yaml": "a: 1\n"})
	got, _, err := imagesOf(t, Source{Path: filepath.Join(root, "one.yaml")})
	if err != nil || !reflect.DeepEqual(got, []string{"docker.io/library/nginx:1"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	// A file named explicitly is read strictly.
	if _, _, err := imagesOf(t, Source{Path: filepath.Join(root, "values.yaml")}); err == nil {
		t.Fatal("values file given as PATH: want an error")
	}
}
