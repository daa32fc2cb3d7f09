package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/render/charts"
)

// Application is the part of an Argo CD Application that decides what it
// renders. It is decoded into these minimal structs on purpose: importing
// Argo CD would pull in most of Kubernetes.
type Application struct {
	File string // where it was read from
	Line int

	Name    string
	Project string
	// DestNamespace is spec.destination.namespace, the default namespace
	// for Helm and ARGOCD_APP_NAMESPACE.
	DestNamespace string
	Sources       []AppSource // spec.source, or spec.sources
	MultiSource   bool
}

// AppSource is one entry of spec.sources (or spec.source).
type AppSource struct {
	RepoURL        string          `json:"repoURL"`
	Path           string          `json:"path"`
	TargetRevision string          `json:"targetRevision"`
	Chart          string          `json:"chart"`
	Ref            string          `json:"ref"`
	Helm           json.RawMessage `json:"helm"`
	Kustomize      json.RawMessage `json:"kustomize"`
	Directory      json.RawMessage `json:"directory"`
	Plugin         json.RawMessage `json:"plugin"`
}

type appHelm struct {
	ValueFiles              []string           `json:"valueFiles"`
	Parameters              []appHelmParam     `json:"parameters"`
	FileParameters          []appHelmFileParam `json:"fileParameters"`
	Values                  string             `json:"values"`
	ValuesObject            map[string]any     `json:"valuesObject"`
	ReleaseName             string             `json:"releaseName"`
	Namespace               string             `json:"namespace"`
	IgnoreMissingValueFiles bool               `json:"ignoreMissingValueFiles"`
	SkipCrds                bool               `json:"skipCrds"`
	SkipTests               bool               `json:"skipTests"`
	KubeVersion             string             `json:"kubeVersion"`
	APIVersions             []string           `json:"apiVersions"`
}

type appHelmParam struct {
	Name        string `json:"name"`
	Value       string `json:"value"`
	ForceString bool   `json:"forceString"`
}

type appHelmFileParam struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

type appKustomize struct {
	Images     []string         `json:"images"`
	NamePrefix string           `json:"namePrefix"`
	NameSuffix string           `json:"nameSuffix"`
	Namespace  string           `json:"namespace"`
	Components []string         `json:"components"`
	Patches    []map[string]any `json:"patches"`
}

type appDirectory struct {
	Recurse bool            `json:"recurse"`
	Include string          `json:"include"`
	Exclude string          `json:"exclude"`
	Jsonnet json.RawMessage `json:"jsonnet"`
}

// LoadApplications reads every Argo CD Application in a manifest file.
func LoadApplications(file string) ([]Application, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	objs, err := images.Decode(file, data)
	if err != nil {
		return nil, err
	}
	var apps []Application
	for _, o := range objs {
		if o.Kind() != "Application" || !strings.HasPrefix(o.APIVersion(), "argoproj.io/") {
			continue
		}
		app, err := parseApplication(o)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: Application %q: %w", o.File, o.Line, o.Name(), err)
		}
		apps = append(apps, app)
	}
	if len(apps) == 0 {
		return nil, fmt.Errorf("%s: no Argo CD Application (apiVersion argoproj.io/v1alpha1, kind Application) in the file", file)
	}
	return apps, nil
}

func parseApplication(o images.Object) (Application, error) {
	var raw struct {
		Spec struct {
			Project     string      `json:"project"`
			Source      *AppSource  `json:"source"`
			Sources     []AppSource `json:"sources"`
			Destination struct {
				Namespace string `json:"namespace"`
			} `json:"destination"`
		} `json:"spec"`
	}
	if err := remarshal(o.Doc, &raw); err != nil {
		return Application{}, err
	}
	app := Application{
		File: o.File, Line: o.Line, Name: o.Name(), Project: raw.Spec.Project,
		DestNamespace: raw.Spec.Destination.Namespace,
	}
	if app.Name == "" {
		return Application{}, errors.New("metadata.name is empty")
	}
	switch {
	case len(raw.Spec.Sources) > 0:
		// Argo CD ignores spec.source when spec.sources is set.
		app.Sources, app.MultiSource = raw.Spec.Sources, true
	case raw.Spec.Source != nil:
		app.Sources = []AppSource{*raw.Spec.Source}
	default:
		return Application{}, errors.New("spec has neither source nor sources")
	}
	return app, nil
}

// remarshal converts a decoded YAML value into a typed struct through JSON,
// which is how Kubernetes objects map onto Go types.
func remarshal(in any, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// present reports whether a source block such as `helm:` is set and not empty.
func present(raw json.RawMessage) bool {
	t := string(bytes.TrimSpace(raw))
	return t != "" && t != "null" && t != "{}"
}

// AppOptions are the facts about the environment an Application is rendered
// in that are not in the Application itself.
type AppOptions struct {
	// RepoRoot is the checkout that every source's path is resolved in.
	// All sources are read from this one checkout, whatever their repoURL.
	RepoRoot string
	// Env holds build environment variables (ARGOCD_APP_REVISION, …);
	// they override the values derived from the Application.
	Env map[string]string
	// Charts fetches the charts of sources with `chart:` (Helm
	// repositories, OCI registries); nil refuses such sources.
	Charts ChartFetcher
}

// RenderSources turns the Application into render sources, exactly as its
// spec says. Sources that only provide a `ref` for value files are not
// rendered. Build environment variables are substituted where Argo CD
// substitutes them: Helm parameters and value file paths, Kustomize images.
// The second result names variables that were referenced but not defined;
// like Argo CD, they substitute as empty.
func (a Application) RenderSources(opts AppOptions) ([]Source, []string, error) {
	root, err := filepath.Abs(opts.RepoRoot)
	if err != nil {
		return nil, nil, err
	}
	refs := map[string]string{} // "$name" -> repository root
	for _, s := range a.Sources {
		if s.Ref != "" {
			refs["$"+s.Ref] = root
		}
	}
	var out []Source
	var missing []string
	for i, s := range a.Sources {
		where := fmt.Sprintf("%s: Application %q source", a.File, a.Name)
		if a.MultiSource {
			where = fmt.Sprintf("%s %d (%s)", where, i+1, s.RepoURL)
		}
		if present(s.Plugin) {
			return nil, nil, fmt.Errorf("%s: config management plugins are not supported", where)
		}
		if s.Chart != "" {
			env := newEnv(a, s, opts.Env)
			src, err := a.chartSource(s, root, refs, env, opts.Charts)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			out = append(out, src)
			missing = append(missing, env.missing...)
			continue
		}
		if strings.HasPrefix(strings.ToLower(s.RepoURL), "oci://") {
			src, err := a.ociSource(s, refs, newEnv(a, s, opts.Env), opts.Charts, where)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			out = append(out, src)
			continue
		}
		if s.Path == "" {
			if s.Ref != "" {
				continue // a values source for $ref paths
			}
			if a.MultiSource {
				return nil, nil, fmt.Errorf("%s: neither path nor ref", where)
			}
			// Argo CD renders the repository root when path is empty.
		}
		env := newEnv(a, s, opts.Env)
		src, err := a.source(s, root, refs, env)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		src.Charts = opts.Charts // dependencies that are not vendored
		out = append(out, src)
		missing = append(missing, env.missing...)
	}
	sort.Strings(missing)
	return out, slices.Compact(missing), nil
}

// chartSource is a source with `chart:`: a chart from a Helm repository or
// an OCI registry, rendered with the source's helm settings. Relative value
// files are files inside the chart; $ref/ paths come from the checkout.
func (a Application) chartSource(s AppSource, root string, refs map[string]string, env *buildEnv, fetch ChartFetcher) (Source, error) {
	ref := charts.Ref{RepoURL: s.RepoURL, Chart: s.Chart, TargetRevision: s.TargetRevision}
	if fetch == nil {
		return Source{}, fmt.Errorf("%s: charts from repositories are not enabled here", ref)
	}
	if s.RepoURL == "" {
		return Source{}, fmt.Errorf("chart %q: repoURL is empty", s.Chart)
	}
	if s.Path != "" {
		return Source{}, fmt.Errorf("%s: both chart and path are set", ref)
	}
	if present(s.Kustomize) || present(s.Directory) {
		return Source{}, fmt.Errorf("%s: a chart source takes helm settings only, not kustomize or directory", ref)
	}
	src := Source{Type: Helm, RepoRoot: root, Chart: &ref, Charts: fetch}
	if present(s.Helm) {
		var h appHelm
		if err := json.Unmarshal(s.Helm, &h); err != nil {
			return Source{}, fmt.Errorf("helm: %w", err)
		}
		o, err := helmOptions(h, a, "", root, refs, env)
		if err != nil {
			return Source{}, fmt.Errorf("%s: %w", ref, err)
		}
		src.Helm = o
	} else {
		src.Helm = HelmOptions{ReleaseName: a.Name, Namespace: a.DestNamespace}
	}
	return src, nil
}

// ociSource is an Argo CD 3.1+ OCI source: an artifact whose one layer
// holds manifests (or a chart), rendered from `path` inside it as a git
// source would be. It is fetched when rendered.
func (a Application) ociSource(s AppSource, refs map[string]string, env *buildEnv, fetch ChartFetcher, where string) (Source, error) {
	if fetch == nil {
		return Source{}, fmt.Errorf("OCI source %s: OCI sources are not enabled here", s.RepoURL)
	}
	if s.Ref != "" && s.Path == "" {
		return Source{}, fmt.Errorf("OCI source %s: $%s values references work with git sources only (as in Argo CD)", s.RepoURL, s.Ref)
	}
	label := s.RepoURL + ":" + s.TargetRevision
	return Source{lazy: func(ctx context.Context) (Source, func(), string, string, error) {
		dir, res, cleanup, err := fetch.FetchSource(ctx, s.RepoURL, s.TargetRevision)
		if err != nil {
			return Source{}, nil, "", "", fmt.Errorf("%s: %w", where, err)
		}
		label := label
		if res.URL != "" {
			label = res.URL
		}
		src, err := a.source(s, dir, refs, env)
		if err != nil {
			cleanup()
			return Source{}, nil, "", "", fmt.Errorf("%s: %s", where, strings.ReplaceAll(err.Error(), dir, label))
		}
		src.Charts = fetch
		return src, cleanup, dir, label, nil
	}}, nil
}

func (a Application) source(s AppSource, root string, refs map[string]string, env *buildEnv) (Source, error) {
	appPath, err := inRepo(root, s.Path)
	if err != nil {
		return Source{}, fmt.Errorf("path %q: %w", s.Path, err)
	}
	if fi, err := os.Stat(appPath); err != nil || !fi.IsDir() {
		return Source{}, fmt.Errorf("path %q: no such directory in %s", s.Path, root)
	}
	if s, err = applySourceOverrides(s, appPath, a.Name); err != nil {
		return Source{}, err
	}
	src := Source{Path: appPath, RepoRoot: root}
	var kinds []Type
	if present(s.Helm) {
		kinds = append(kinds, Helm)
	}
	if present(s.Kustomize) {
		kinds = append(kinds, Kustomize)
	}
	if present(s.Directory) {
		kinds = append(kinds, Directory)
	}
	if len(kinds) > 1 {
		return Source{}, fmt.Errorf("more than one of helm, kustomize and directory is set")
	}
	if len(kinds) == 1 {
		src.Type = kinds[0]
	}

	if present(s.Helm) {
		var h appHelm
		if err := json.Unmarshal(s.Helm, &h); err != nil {
			return Source{}, fmt.Errorf("helm: %w", err)
		}
		if src.Helm, err = helmOptions(h, a, appPath, root, refs, env); err != nil {
			return Source{}, err
		}
	} else {
		src.Helm = HelmOptions{ReleaseName: a.Name, Namespace: a.DestNamespace}
	}
	if present(s.Kustomize) {
		var k appKustomize
		if err := json.Unmarshal(s.Kustomize, &k); err != nil {
			return Source{}, fmt.Errorf("kustomize: %w", err)
		}
		src.Kustomize = KustomizeOptions{
			NamePrefix: k.NamePrefix, NameSuffix: k.NameSuffix, Namespace: k.Namespace,
			Components: k.Components, Patches: k.Patches,
		}
		for _, img := range k.Images {
			src.Kustomize.Images = append(src.Kustomize.Images, env.subst(img))
		}
	}
	if present(s.Directory) {
		var d appDirectory
		if err := json.Unmarshal(s.Directory, &d); err != nil {
			return Source{}, fmt.Errorf("directory: %w", err)
		}
		if present(d.Jsonnet) {
			return Source{}, errors.New("directory jsonnet is not supported")
		}
		// No substitution: Argo CD never substitutes in plain directories.
		src.Directory = DirectoryOptions{Recurse: d.Recurse, Include: d.Include, Exclude: d.Exclude}
	}
	return src, nil
}

// applySourceOverrides merges .argocd-source.yaml and then
// .argocd-source-<app>.yaml from the source directory into s as JSON merge
// patches, as Argo CD does (Argo CD Image Updater writes its git write-back
// there). Only rendering settings change: path, repoURL, chart and
// targetRevision are kept.
func applySourceOverrides(s AppSource, appPath, appName string) (AppSource, error) {
	for _, name := range []string{".argocd-source.yaml", ".argocd-source-" + appName + ".yaml"} {
		file := filepath.Join(appPath, name)
		if !isFile(file) {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return s, err
		}
		var patch any
		if err := yaml.Unmarshal(data, &patch); err != nil {
			return s, fmt.Errorf("%s: %w", file, err)
		}
		var cur any
		if err := remarshal(s, &cur); err != nil {
			return s, err
		}
		var merged AppSource
		if err := remarshal(mergePatch(cur, patch), &merged); err != nil {
			return s, fmt.Errorf("%s: %w", file, err)
		}
		merged.Path, merged.RepoURL, merged.Chart, merged.TargetRevision = s.Path, s.RepoURL, s.Chart, s.TargetRevision
		s = merged
	}
	return s, nil
}

// mergePatch applies an RFC 7386 JSON merge patch.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
		} else {
			tm[k] = mergePatch(tm[k], v)
		}
	}
	return tm
}

func helmOptions(h appHelm, a Application, appPath, root string, refs map[string]string, env *buildEnv) (HelmOptions, error) {
	o := HelmOptions{
		ReleaseName: h.ReleaseName, Namespace: h.Namespace,
		SkipCRDs: h.SkipCrds, SkipTests: h.SkipTests,
		KubeVersion: h.KubeVersion, APIVersions: h.APIVersions,
	}
	if o.ReleaseName == "" {
		o.ReleaseName = a.Name
	}
	if o.Namespace == "" {
		o.Namespace = a.DestNamespace
	}
	o.IgnoreMissingValueFiles = h.IgnoreMissingValueFiles
	for _, vf := range h.ValueFiles {
		if appPath == "" && !strings.HasPrefix(vf, "$") {
			// A chart from a repository: the file is inside the chart,
			// read when the chart is fetched.
			p, err := inChart(vf, env)
			if err != nil {
				return HelmOptions{}, err
			}
			o.ValueFiles = append(o.ValueFiles, p)
			continue
		}
		p, err := resolveValueFile(vf, appPath, root, refs, env)
		if err != nil {
			return HelmOptions{}, err
		}
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) && h.IgnoreMissingValueFiles {
				continue
			}
			return HelmOptions{}, fmt.Errorf("helm valueFiles %q: %w", vf, err)
		}
		o.ValueFiles = append(o.ValueFiles, p)
	}
	// valuesObject wins over values; both come after the value files and
	// are never substituted.
	switch {
	case len(h.ValuesObject) > 0:
		o.Values = append(o.Values, h.ValuesObject)
	case strings.TrimSpace(h.Values) != "":
		v := map[string]any{}
		if err := yaml.Unmarshal([]byte(h.Values), &v); err != nil {
			return HelmOptions{}, fmt.Errorf("helm values: %w", err)
		}
		o.Values = append(o.Values, v)
	}
	for _, p := range h.Parameters {
		if p.Name == "" {
			return HelmOptions{}, errors.New("helm parameter without a name")
		}
		expr := p.Name + "=" + escapeSetValue(env.subst(p.Value))
		if p.ForceString {
			o.SetString = append(o.SetString, expr)
		} else {
			o.Set = append(o.Set, expr)
		}
	}
	for _, fp := range h.FileParameters {
		if appPath == "" && !strings.HasPrefix(fp.Path, "$") {
			return HelmOptions{}, fmt.Errorf("helm fileParameters %q: only $ref paths are supported for a chart from a repository", fp.Name)
		}
		p, err := resolveValueFile(fp.Path, appPath, root, refs, env)
		if err != nil {
			return HelmOptions{}, err
		}
		o.SetFile = append(o.SetFile, fp.Name+"="+p)
	}
	return o, nil
}

// escapeSetValue keeps a parameter value whole when Helm parses it as a
// --set expression: commas would start a new key, unless the value is a
// {list}.
func escapeSetValue(v string) string {
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		return v
	}
	return strings.ReplaceAll(v, ",", `\,`)
}

// resolveValueFile resolves a Helm value file reference as Argo CD does:
// "$ref/path" in the referenced source's repository, an absolute path from
// the repository root, anything else relative to the chart. Remote URLs
// are refused (offline), and no path may leave the repository.
func resolveValueFile(vf, appPath, root string, refs map[string]string, env *buildEnv) (string, error) {
	if strings.HasPrefix(vf, "$") {
		name, rest, _ := strings.Cut(vf, "/")
		repo, ok := refs[name]
		if !ok {
			return "", fmt.Errorf("value file %q: no source has ref %q", vf, strings.TrimPrefix(name, "$"))
		}
		// Substitution happens after the $ref is resolved, as in Argo CD.
		p, err := inRepo(repo, env.subst(rest))
		if err != nil {
			return "", fmt.Errorf("value file %q: %w", vf, err)
		}
		return p, nil
	}
	v := env.subst(vf)
	if strings.Contains(v, "://") {
		return "", fmt.Errorf("value file %q: remote value files are not supported offline", vf)
	}
	var p string
	var err error
	if filepath.IsAbs(v) {
		p, err = inRepo(root, v)
	} else {
		p, err = inRepo(root, filepath.Join(mustRel(root, appPath), v))
	}
	if err != nil {
		return "", fmt.Errorf("value file %q: %w", vf, err)
	}
	return p, nil
}

// inChart checks a value file path of a chart from a repository: a relative
// path inside the chart, slash-separated.
func inChart(vf string, env *buildEnv) (string, error) {
	v := env.subst(vf)
	if strings.Contains(v, "://") {
		return "", fmt.Errorf("value file %q: remote value files are not supported offline", vf)
	}
	clean := path.Clean(strings.TrimPrefix(filepath.ToSlash(v), "./"))
	if v == "" || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("value file %q: not a path inside the chart", vf)
	}
	return clean, nil
}

func mustRel(root, p string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return rel
}

// inRepo joins a repository-relative path onto root and refuses a result
// outside root (lexically and through symlinks).
func inRepo(root, p string) (string, error) {
	joined := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(p, "/")))
	if !within(root, joined) {
		return "", errOutside
	}
	realRoot, err := realAbs(root)
	if err != nil {
		return "", err
	}
	if real, err := realAbs(joined); err == nil && !within(realRoot, real) {
		return "", errOutside
	}
	return joined, nil
}

// FindRepoRoot returns the top of the git checkout holding path, a file or
// a directory (the nearest directory at or above it with a .git entry), or
// the directory itself (a file's directory) when it is in no checkout.
func FindRepoRoot(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	start := abs
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		start = filepath.Dir(abs)
	}
	for dir := start; ; {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return start, nil
		}
		dir = parent
	}
}
