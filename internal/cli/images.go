package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/discover"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/images"
	"github.com/ballast-dev/ballast/internal/render"
	"github.com/ballast-dev/ballast/internal/render/charts"
)

type imagesFlags struct {
	recurse          bool
	include, exclude string
	values           []string
	set, setString   []string
	releaseName      string
	kubeVersion      string
	loadRestrictor   string
	apiVersions      []string
	namespace        string
	apps             []string
	env              []string
	repoRoot         string
	extra            []string
	output           string
	chartCache       string
	chartMaxBytes    int64
	chartAuth        string
	helmCommand      string
}

func newImagesCmd(e *env) *cobra.Command {
	var f imagesFlags
	c := &cobra.Command{
		Use:   "images [PATH…]",
		Short: "Render an app's manifests and print every container image it runs",
		Long: `Render manifests and print every image reference they run, normalized,
deduplicated and sorted, one per line.

Each PATH is a manifest file or a directory, detected as Argo CD detects it:
a kustomization file means Kustomize, a Chart.yaml means a Helm chart
(dependencies must be vendored in charts/), anything else is a directory of
YAML/JSON manifests. --app renders an Argo CD Application file (single or
multi-source) exactly as its spec says, with every source path resolved in
--repo-root (default: the git checkout holding the file). A source with
chart: is fetched from its Helm repository (index.yaml, version ranges
resolved as Argo CD does) or OCI registry, checked, and rendered with the
source's helm settings; --chart-cache keeps it for offline use, and -o json
records each chart's exact version and digest. Plugins, jsonnet and OCI
sources without chart are refused (exit 2).

Images are found in every pod spec of the built-in workloads and wherever a
pod-spec-shaped object appears in other kinds (Argo Rollouts, Knative, …).`,
		Example: `  ballast images examples/apps/guestbook --recurse
  ballast images examples/charts/telemetry --values examples/charts/telemetry/values-edge.yaml
  ballast images --app examples/argocd/edge-stack.yaml --env ARGOCD_APP_REVISION=$(git rev-parse HEAD)
  ballast images examples/apps/shop/overlays/edge -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImages(cmd, e, f, args)
		},
	}
	fl := c.Flags()
	fl.BoolVar(&f.recurse, "recurse", false, "directories: include subdirectories")
	fl.StringVar(&f.include, "include", "", "directories: only files matching this Argo CD glob (relative path, e.g. '{a.yaml,b/*.yaml}')")
	fl.StringVar(&f.exclude, "exclude", "", "directories: skip files matching this Argo CD glob")
	fl.StringArrayVarP(&f.values, "values", "f", nil, "Helm: values file (repeatable, later files win)")
	fl.StringArrayVar(&f.set, "set", nil, "Helm: set values, e.g. image.tag=1.2 (repeatable)")
	fl.StringArrayVar(&f.setString, "set-string", nil, "Helm: set string values (repeatable)")
	fl.StringVar(&f.releaseName, "release-name", "", "Helm: release name (default \"release-name\")")
	fl.StringVar(&f.namespace, "namespace", "", "Helm: release namespace (default \"default\")")
	fl.StringVar(&f.kubeVersion, "kube-version", "", "Helm: Kubernetes version for .Capabilities (default: Helm's)")
	fl.StringArrayVar(&f.apiVersions, "api-versions", nil, "Helm: extra API version for .Capabilities, e.g. monitoring.coreos.com/v1 (repeatable)")
	fl.StringVar(&f.loadRestrictor, "load-restrictor", "LoadRestrictionsRootOnly", "Kustomize: LoadRestrictionsRootOnly or LoadRestrictionsNone (as Argo CD's kustomize.buildOptions)")
	fl.StringArrayVar(&f.apps, "app", nil, "Argo CD Application file to render (repeatable)")
	fl.StringArrayVar(&f.env, "env", nil, "build variable for --app, e.g. ARGOCD_APP_REVISION=<sha> (repeatable)")
	fl.StringVar(&f.repoRoot, "repo-root", "", "checkout that --app source paths are resolved in (default: git top level of the app file)")
	fl.StringArrayVar(&f.extra, "extra-images", nil, "file listing more images, one per line, # comments (repeatable)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&f.chartCache, "chart-cache", "", "--app charts from Helm repositories and OCI registries: keep downloads in DIR and use them without network")
	chartRepoAuthVar(fl, &f.chartAuth)
	fl.StringVar(&f.helmCommand, "helm-command", render.DefaultHelmCommand, "Kustomize helmCharts: the helm v3 binary that templates them (charts are fetched by ballast)")
	fl.Int64Var(&f.chartMaxBytes, "chart-max-bytes", charts.DefaultMaxChartBytes, "--app charts: refuse a chart archive larger than this, compressed or not (bytes)")
	return c
}

func runImages(cmd *cobra.Command, e *env, f imagesFlags, paths []string) error {
	if f.output != "text" && f.output != "json" {
		return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", f.output))
	}
	if len(paths) == 0 && len(f.apps) == 0 && len(f.extra) == 0 {
		return exitcode.Invalid(errors.New("nothing to render: give a PATH, --app FILE or --extra-images FILE"))
	}
	var restrictorNone bool
	switch f.loadRestrictor {
	case "LoadRestrictionsRootOnly", "rootOnly":
	case "LoadRestrictionsNone", "none":
		restrictorNone = true
	default:
		return exitcode.Invalid(fmt.Errorf("--load-restrictor %q: want LoadRestrictionsRootOnly or LoadRestrictionsNone", f.loadRestrictor))
	}
	envVars, err := parseEnv(f.env)
	if err != nil {
		return exitcode.Invalid(err)
	}
	if len(f.apps) == 0 && (len(f.env) > 0 || f.repoRoot != "") {
		return exitcode.Invalid(errors.New("--env and --repo-root apply to --app"))
	}
	if f.chartMaxBytes <= 0 {
		return exitcode.Invalid(fmt.Errorf("--chart-max-bytes %d: want a positive number of bytes", f.chartMaxBytes))
	}
	creds, err := loadChartRepoAuth(f.chartAuth)
	if err != nil {
		return exitcode.Invalid(err)
	}
	fetcher := &charts.Fetcher{CacheDir: f.chartCache, MaxChartBytes: f.chartMaxBytes, RepoAuth: creds, Log: e.log}

	var sources []render.Source
	helmFlags := len(f.values) > 0 || len(f.set) > 0 || len(f.setString) > 0 || f.releaseName != "" || f.namespace != "" ||
		f.kubeVersion != "" || len(f.apiVersions) > 0
	chartDirs := 0
	for _, p := range paths {
		if typ, err := render.Detect(p); err == nil && typ == render.Helm {
			chartDirs++
		}
		// Symlinks may point anywhere inside the checkout, as in Argo CD.
		root, err := render.FindRepoRoot(p)
		if err != nil {
			return exitcode.Invalid(err)
		}
		sources = append(sources, render.Source{
			Path:      p,
			RepoRoot:  root,
			Directory: render.DirectoryOptions{Recurse: f.recurse, Include: f.include, Exclude: f.exclude},
			Helm: render.HelmOptions{
				ValueFiles: f.values, Set: f.set, SetString: f.setString,
				ReleaseName: f.releaseName, Namespace: f.namespace,
				KubeVersion: f.kubeVersion, APIVersions: f.apiVersions,
			},
			Kustomize: render.KustomizeOptions{LoadRestrictorNone: restrictorNone, HelmCommand: f.helmCommand},
			Log:       e.log,
			Charts:    fetcher, // chart dependencies that are not vendored
		})
	}
	if helmFlags && chartDirs == 0 {
		return exitcode.Invalid(errors.New("--values, --set, --set-string, --release-name, --namespace, --kube-version and --api-versions apply to Helm charts, and no PATH is a chart"))
	}
	for _, file := range f.apps {
		appSources, err := discover.ApplicationSources(e.log, file, f.repoRoot, envVars, fetcher)
		if err != nil {
			return exitcode.Invalid(err)
		}
		for i := range appSources {
			appSources[i].Kustomize.LoadRestrictorNone = restrictorNone
			appSources[i].Kustomize.HelmCommand = f.helmCommand
		}
		sources = append(sources, appSources...)
	}

	ctx := cmd.Context()
	set, err := discover.Images(ctx, e.log, sources)
	if err != nil {
		if ctx.Err() != nil {
			return exitcode.Fail(ctx.Err())
		}
		if errors.Is(err, charts.ErrUnavailable) {
			return exitcode.Fail(err)
		}
		return exitcode.Invalid(err)
	}
	for _, file := range f.extra {
		data, err := os.ReadFile(file)
		if err != nil {
			return exitcode.Invalid(fmt.Errorf("--extra-images: %w", err))
		}
		occ, err := images.ParseList(file, data)
		if err != nil {
			return exitcode.Invalid(err)
		}
		set.AddAll(occ)
	}
	if set.Len() == 0 {
		e.log.Warn("no container images found")
	}
	return writeImages(e, set, fetcher.Resolved(), f.output)
}

func parseEnv(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t$") {
			return nil, fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

// writeImages prints the images; in JSON, with the charts they came from
// (exact version and digest).
func writeImages(e *env, set images.Set, resolved []charts.Resolved, output string) error {
	list := set.List()
	if output == "json" {
		cwd, _ := os.Getwd()
		for i := range list {
			for j := range list[i].Locations {
				loc := &list[i].Locations[j]
				loc.File = displayPath(cwd, loc.File)
				if tool, dir, ok := strings.Cut(loc.Via, " "); ok {
					loc.Via = tool + " " + displayPath(cwd, dir)
				}
			}
		}
		return writeJSON(e.stdout, struct {
			Images []images.Image    `json:"images"`
			Charts []charts.Resolved `json:"charts,omitempty"`
		}{list, resolved})
	}
	var b strings.Builder
	for _, img := range list {
		b.WriteString(img.Ref)
		b.WriteByte('\n')
	}
	_, err := fmt.Fprint(e.stdout, b.String())
	return err
}

// displayPath shows an absolute path under the working directory as a
// relative one, so output does not depend on where the checkout lives.
func displayPath(cwd, p string) string {
	if cwd == "" || !filepath.IsAbs(p) {
		return filepath.ToSlash(p)
	}
	rel, err := filepath.Rel(cwd, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(p)
	}
	return filepath.ToSlash(rel)
}
