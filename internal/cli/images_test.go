package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The exact image set of each example, as examples/README.md lists it.
// Paths are relative to the repository root (the tests chdir there).
var exampleImages = []struct {
	args []string
	want []string
}{
	{[]string{"examples/apps/guestbook"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
	{[]string{"examples/apps/guestbook", "--recurse"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
	{[]string{"examples/apps/shop/base"}, []string{
		"ghcr.io/ballast-dev/shop-api:1.4.0", "registry.example.com:5000/shop/payments:0.9.3"}},
	{[]string{"examples/apps/shop/overlays/edge"}, []string{
		"ghcr.io/ballast-dev/shop-api:1.4.2", "registry.example.com:5000/shop/payments:0.9.3"}},
	{[]string{"examples/charts/telemetry"}, []string{
		"docker.io/library/busybox:1.36.1", "ghcr.io/ballast-dev/telemetry-agent:2.3.0"}},
	{[]string{"examples/charts/telemetry", "--values", "examples/charts/telemetry/values-edge.yaml"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/otel/opentelemetry-collector:0.110.0", "ghcr.io/ballast-dev/telemetry-agent:2.3.0"}},
	{[]string{"examples/charts/telemetry", "--set", "collector.enabled=true,agent.image.tag=2.3.1"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/otel/opentelemetry-collector:0.110.0", "ghcr.io/ballast-dev/telemetry-agent:2.3.1"}},
	{[]string{"--app", "examples/argocd/guestbook.yaml"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1"}},
	{[]string{"--app", "examples/argocd/shop-edge.yaml"}, []string{
		"ghcr.io/ballast-dev/shop-api:1.4.2", "registry.example.com:5000/shop/payments:0.9.3"}},
	{[]string{"--app", "examples/argocd/telemetry.yaml"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/otel/opentelemetry-collector:0.110.0", "ghcr.io/ballast-dev/telemetry-agent:2.3.0"}},
	{[]string{"--app", "examples/argocd/edge-stack.yaml", "--env", "ARGOCD_APP_REVISION=0123456789abcdef0123456789abcdef01234567"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1",
		"docker.io/otel/opentelemetry-collector:0.110.0", "ghcr.io/ballast-dev/shop-api:1.4.2",
		"ghcr.io/ballast-dev/telemetry-agent:2.3.0", "registry.example.com:5000/shop/payments:0.9.3"}},
	// A plain directory without manifests at its top level renders nothing,
	// as in Argo CD; recursing reads the raw files (Kustomize bases unpatched).
	{[]string{"examples/apps"}, nil},
	{[]string{"examples/apps", "--recurse"}, []string{
		"docker.io/library/busybox:1.36.1", "docker.io/library/nginx:1.27.1", "docker.io/library/redis:7.4.1",
		"ghcr.io/ballast-dev/shop-api:1.4.0", "registry.example.com:5000/shop/payments:0.9.3"}},
}

func TestImagesExamples(t *testing.T) {
	t.Chdir("../..")
	for _, tt := range exampleImages {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"images"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			want := ""
			if len(tt.want) > 0 {
				want = strings.Join(tt.want, "\n") + "\n"
			}
			if out != want {
				t.Errorf("stdout\n%s\nwant\n%s", out, want)
			}
		})
	}
}

func TestImagesJSONGolden(t *testing.T) {
	t.Chdir("../..")
	for name, args := range map[string][]string{
		"edge-stack.json": {"--app", "examples/argocd/edge-stack.yaml", "--env", "ARGOCD_APP_REVISION=0123456789abcdef0123456789abcdef01234567"},
		"guestbook.json":  {"examples/apps/guestbook", "--recurse"},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"images", "-o", "json"}, args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var doc struct {
				Images []struct {
					Image   string `json:"image"`
					FoundIn []struct {
						File, Kind, Name, Container, Field string
					} `json:"foundIn"`
				} `json:"images"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Images) == 0 {
				t.Fatalf("bad JSON (%v): %s", err, out)
			}
			for _, img := range doc.Images {
				for _, l := range img.FoundIn {
					if l.File == "" || filepath.IsAbs(l.File) || l.Kind == "" || l.Name == "" || l.Container == "" {
						t.Errorf("%s: incomplete location %+v", img.Image, l)
					}
				}
			}
			golden := filepath.Join("internal/cli/testdata", name)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, out)
			}
		})
	}
}

func TestImagesExtraImages(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "extra.txt")
	if err := os.WriteFile(list, []byte("# pulled by the operator at run time\nquay.io/prometheus/prometheus:v3.0.0\nnginx:1.27.1 # also in the manifests\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "images", "../../examples/apps/shop/overlays/edge", "--extra-images", list)
	want := "ghcr.io/ballast-dev/shop-api:1.4.2\nquay.io/prometheus/prometheus:v3.0.0\n" +
		"docker.io/library/nginx:1.27.1\nregistry.example.com:5000/shop/payments:0.9.3\n"
	if code != 0 || sortedLines(out) != sortedLines(want) || !isSorted(out) {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
}

func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := 1; i < len(lines); i++ {
		for j := i; j > 0 && lines[j] < lines[j-1]; j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
	return strings.Join(lines, "\n")
}

func isSorted(s string) bool { return sortedLines(s) == strings.TrimSpace(s) }

func TestImagesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx}]}\n")
	broken := write("broken/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n name: q\n")
	badRef := write("badref/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: 'NGINX'}]}\n")
	extra := write("extra.txt", "nginx\nnot a ref\n")
	app := write("app.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec: {source: {repoURL: x, path: does/not/exist}}\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"broken YAML, with file and line", []string{filepath.Dir(broken)}, "broken/pod.yaml:4: "},
		{"one bad path among good ones", []string{filepath.Dir(good), filepath.Dir(broken)}, "pod.yaml:4: "},
		{"invalid image reference names the object", []string{badRef}, `pod.yaml:1: Pod/web: container "c"`},
		{"missing path", []string{filepath.Join(dir, "nope")}, "path does not exist"},
		{"bad extra images line", []string{good, "--extra-images", extra}, "extra.txt:2: "},
		{"missing extra images file", []string{good, "--extra-images", filepath.Join(dir, "none.txt")}, "--extra-images"},
		{"Application path missing", []string{"--app", app, "--repo-root", dir}, `path "does/not/exist": no such directory`},
		{"chart with missing dependency", []string{"--set", "a=b", writeChartWithoutDeps(t, dir)}, "names from `helm repo add` are not known"},
		{"helm flags without a chart", []string{good, "--set", "a=b"}, "no PATH is a chart"},
		{"--env without --app", []string{good, "--env", "A=B"}, "apply to --app"},
		{"malformed --env", []string{"--app", app, "--env", "NOEQUALS"}, "want NAME=VALUE"},
		{"bad output format", []string{good, "-o", "yaml"}, "want text or json"},
		{"bad load restrictor", []string{good, "--load-restrictor", "open"}, "--load-restrictor"},
		{"nothing to render", nil, "nothing to render"},
		{"unknown flag", []string{good, "--nope"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"images"}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing on bad input", out)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q, want it to contain %q", errOut, tt.want)
			}
		})
	}
}

func writeChartWithoutDeps(t *testing.T, dir string) string {
	t.Helper()
	chart := filepath.Join(dir, "chart")
	if err := os.MkdirAll(chart, 0o755); err != nil {
		t.Fatal(err)
	}
	meta := "apiVersion: v2\nname: c\nversion: 0.1.0\ndependencies:\n  - {name: db, version: 1.0.0, repository: \"@stable\"}\n"
	if err := os.WriteFile(filepath.Join(chart, "Chart.yaml"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	return chart
}
