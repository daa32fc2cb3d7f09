package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/images"
)

// HelmOptions are `helm template` settings, applied in Helm's order: value
// files, then Values, then Set, then SetString, then SetFile.
type HelmOptions struct {
	ValueFiles  []string         // paths of values files, in order
	Values      []map[string]any // inline values after the files (an Application's values/valuesObject)
	Set         []string         // --set expressions, e.g. "a.b=1,c=x"
	SetString   []string         // --set-string expressions
	SetFile     []string         // --set-file expressions: key=path
	ReleaseName string           // default "release-name", as `helm template`
	Namespace   string           // default "default"
	SkipCRDs    bool             // leave out the chart's crds/ directory
	SkipTests   bool             // leave out test hooks
	// KubeVersion and APIVersions are what .Capabilities reports, as Argo
	// CD passes the destination cluster's. Defaults: Helm's built-in ones.
	KubeVersion string
	APIVersions []string
	// IgnoreMissingValueFiles drops value files that do not exist in a
	// chart fetched from a repository (files on disk are checked when the
	// Application is read).
	IgnoreMissingValueFiles bool
}

// renderHelm renders a chart directory with the Helm library, as `helm
// template --include-crds` does. Dependencies not vendored in charts/ are
// fetched through src.Charts (Chart.lock, else the Chart.yaml constraint)
// or loaded from file:// paths; without src.Charts they must be vendored.
func renderHelm(ctx context.Context, src Source) ([]images.Object, error) {
	chrt, err := loader.LoadDir(src.Path)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", src.Path, err)
	}
	root := src.RepoRoot
	if root == "" {
		root = src.Path
	}
	if err := addDependencies(ctx, src.Charts, chrt, src.Path, src.Path, root, 0); err != nil {
		return nil, err
	}
	return renderChart(ctx, src, chrt, src.Path, os.ReadFile)
}

// renderRemoteChart fetches src.Chart and renders it. Value files with
// relative paths are read from inside the chart, as Argo CD reads them.
func renderRemoteChart(ctx context.Context, src Source) ([]images.Object, error) {
	if src.Charts == nil {
		return nil, fmt.Errorf("%s: no chart fetcher configured", src.Chart)
	}
	chrt, res, err := src.Charts.Fetch(ctx, *src.Chart)
	if err != nil {
		return nil, err
	}
	label := res.URL
	if label == "" {
		label = src.Chart.RepoURL + "/" + src.Chart.Chart + "-" + res.Version + ".tgz"
	}
	if err := addDependencies(ctx, src.Charts, chrt, label, "", "", 0); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, f := range chrt.Raw {
		files[f.Name] = f.Data
	}
	read := func(p string) ([]byte, error) {
		if filepath.IsAbs(p) {
			return os.ReadFile(p)
		}
		name := filepath.ToSlash(filepath.Clean(p))
		if data, ok := files[name]; ok {
			return data, nil
		}
		return nil, fmt.Errorf("%s: %w in chart %s", p, os.ErrNotExist, label)
	}
	if src.Helm.IgnoreMissingValueFiles {
		var keep []string
		for _, vf := range src.Helm.ValueFiles {
			if _, err := read(vf); err == nil {
				keep = append(keep, vf)
			}
		}
		src.Helm.ValueFiles = keep
	}
	return renderChart(ctx, src, chrt, label, read)
}

// renderChart renders a loaded chart; where names it in errors and object
// locations, readFile reads value files.
func renderChart(ctx context.Context, src Source, chrt *chart.Chart, where string, readFile func(string) ([]byte, error)) ([]images.Object, error) {
	o := src.Helm
	vals, err := helmValues(o, readFile)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", where, err)
	}
	cfg := &action.Configuration{Log: func(format string, args ...any) {
		src.Log.Debug("helm: " + fmt.Sprintf(format, args...))
	}}
	inst := action.NewInstall(cfg)
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.IncludeCRDs = !o.SkipCRDs
	inst.ReleaseName = o.ReleaseName
	if inst.ReleaseName == "" {
		inst.ReleaseName = "release-name"
	}
	inst.Namespace = o.Namespace
	if inst.Namespace == "" {
		inst.Namespace = "default"
	}
	if o.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("helm chart %s: kube version: %w", where, err)
		}
		inst.KubeVersion = kv
	}
	inst.APIVersions = chartutil.VersionSet(o.APIVersions)
	rel, err := inst.RunWithContext(ctx, chrt, vals)
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", where, err)
	}
	objs, err := splitHelmManifest(where, chrt, rel.Manifest)
	if err != nil {
		return nil, err
	}
	for _, h := range rel.Hooks {
		if o.SkipTests && isTestHook(h.Events) {
			continue
		}
		got, err := decodeRendered(where, chrt, h.Path, h.Manifest)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// isTestHook: "test", and the older "test-success"/"test-failure".
func isTestHook(events []release.HookEvent) bool {
	for _, e := range events {
		if strings.HasPrefix(string(e), "test") {
			return true
		}
	}
	return false
}

// helmValues merges values the way `helm template` orders its flags.
func helmValues(o HelmOptions, readFile func(string) ([]byte, error)) (map[string]any, error) {
	base := map[string]any{}
	for _, f := range o.ValueFiles {
		data, err := readFile(f)
		if err != nil {
			return nil, fmt.Errorf("values file: %w", err)
		}
		cur := map[string]any{}
		if err := yaml.Unmarshal(data, &cur); err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		base = mergeValues(base, cur)
	}
	for _, v := range o.Values {
		base = mergeValues(base, v)
	}
	for _, s := range o.Set {
		if err := strvals.ParseInto(s, base); err != nil {
			return nil, fmt.Errorf("--set %q: %w", s, err)
		}
	}
	for _, s := range o.SetString {
		if err := strvals.ParseIntoString(s, base); err != nil {
			return nil, fmt.Errorf("--set-string %q: %w", s, err)
		}
	}
	for _, s := range o.SetFile {
		reader := func(rs []rune) (any, error) {
			data, err := os.ReadFile(string(rs))
			return string(data), err
		}
		if err := strvals.ParseIntoFile(s, base, reader); err != nil {
			return nil, fmt.Errorf("--set-file %q: %w", s, err)
		}
	}
	return base, nil
}

// mergeValues merges b into a, as Helm merges successive values files:
// nested maps merge, anything else in b replaces.
func mergeValues(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// sourceLine starts each template's output in a rendered Helm manifest.
var sourceLine = regexp.MustCompile(`(?m)^---\n# Source: (.*)\n`)

// splitHelmManifest cuts the rendered manifest into the output of each
// template, so every object is reported against the template file that
// produced it.
func splitHelmManifest(chartDir string, chrt *chart.Chart, manifest string) ([]images.Object, error) {
	idx := sourceLine.FindAllStringSubmatchIndex(manifest, -1)
	if len(idx) == 0 {
		return decodeRendered(chartDir, chrt, chrt.Name(), manifest)
	}
	var objs []images.Object
	for i, m := range idx {
		end := len(manifest)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		got, err := decodeRendered(chartDir, chrt, manifest[m[2]:m[3]], manifest[m[1]:end])
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// decodeRendered decodes one template's output. Its file is the template's
// path on disk; lines are dropped because they would count rendered output,
// not template source.
func decodeRendered(chartDir string, chrt *chart.Chart, tmplPath, out string) ([]images.Object, error) {
	rel := strings.TrimPrefix(tmplPath, chrt.Name()+"/")
	file := filepath.Join(chartDir, filepath.FromSlash(rel))
	if strings.Contains(chartDir, "://") {
		file = chartDir + "#" + rel // a URL: Join would fold its "//"
	}
	objs, err := images.DecodeYAML(file, []byte(out))
	if err != nil {
		return nil, fmt.Errorf("helm chart %s: template output: %w", chartDir, err)
	}
	for i := range objs {
		objs[i].Line = 0
		objs[i].Via = "helm " + chartDir
	}
	return objs, nil
}
