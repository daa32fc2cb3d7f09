package bundle

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"

	"github.com/ballast-dev/ballast/internal/imageref"
)

// Annotations of a bundle entry that is a Helm chart or an Argo CD OCI
// source rather than a container image (docs/charts.md). They sit beside
// AnnotationImageRef, which names where the entry is stored, exactly as for
// an image.
const (
	// AnnotationChartRepo holds the repoURL as the Application names it:
	// "https://charts.example.com/stable", "oci://registry.example.com/charts"
	// or "registry.example.com/charts" (Helm OCI without the scheme).
	AnnotationChartRepo = "io.ballast.chart.repo"
	// AnnotationChartName holds the chart name; absent for an OCI source.
	AnnotationChartName = "io.ballast.chart.name"
	// AnnotationChartVersion holds the exact version resolved at bundle
	// time (for an OCI source: the tag or digest its targetRevision named).
	AnnotationChartVersion = "io.ballast.chart.version"
)

// Media types of a Helm chart stored in an OCI registry (Helm's
// pkg/registry constants; repeated here so edge code need not import Helm).
const (
	HelmConfigMediaType = "application/vnd.cncf.helm.config.v1+json"
	HelmChartMediaType  = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// maxChartField bounds each chart annotation read from outside input.
const maxChartField = 2048

// Chart says what an entry is when it is not an image: a Helm chart (from a
// Helm repository or an OCI registry) or an Argo CD OCI source.
type Chart struct {
	RepoURL string // as the Application names it; never empty
	Name    string // chart name; empty for an OCI source
	Version string // exact version (or OCI tag/digest for an OCI source); never empty
}

// IsSource reports whether c is an Argo CD OCI source (manifests as an OCI
// artifact) rather than a Helm chart.
func (c Chart) IsSource() bool { return c.Name == "" }

// String names the entry as verify and the status page report it:
// "chart cert-manager 1.15.0 from https://charts.example.com" or
// "oci source oci://registry.example.com/manifests 1.0.0".
func (c Chart) String() string {
	if c.IsSource() {
		return fmt.Sprintf("oci source %s %s", c.RepoURL, c.Version)
	}
	return fmt.Sprintf("chart %s %s from %s", c.Name, c.Version, c.RepoURL)
}

func (c Chart) annotations() map[string]string {
	a := map[string]string{AnnotationChartRepo: c.RepoURL, AnnotationChartVersion: c.Version}
	if c.Name != "" {
		a[AnnotationChartName] = c.Name
	}
	return a
}

func (c Chart) check() error {
	for _, f := range []struct{ name, v string }{
		{AnnotationChartRepo, c.RepoURL}, {AnnotationChartName, c.Name}, {AnnotationChartVersion, c.Version},
	} {
		if len(f.v) > maxChartField {
			return fmt.Errorf("annotation %s: %d bytes exceeds %d", f.name, len(f.v), maxChartField)
		}
		if strings.IndexFunc(f.v, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
			return fmt.Errorf("annotation %s %q: control or space character", f.name, f.v)
		}
	}
	if c.RepoURL == "" {
		return fmt.Errorf("annotation %s missing", AnnotationChartRepo)
	}
	if c.Version == "" {
		return fmt.Errorf("annotation %s missing", AnnotationChartVersion)
	}
	return nil
}

func parseChart(a map[string]string) (*Chart, error) {
	repo, hasRepo := a[AnnotationChartRepo]
	name, hasName := a[AnnotationChartName]
	version, hasVersion := a[AnnotationChartVersion]
	if !hasRepo && !hasName && !hasVersion {
		return nil, nil
	}
	c := &Chart{RepoURL: repo, Name: name, Version: version}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

var ociTagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ChartTag is the OCI tag of a chart version, by Helm's rule: '+' (semver
// build metadata) becomes '_'. It fails for a version that is not a valid
// tag even then.
func ChartTag(version string) (string, error) {
	t := strings.ReplaceAll(version, "+", "_")
	if !ociTagRE.MatchString(t) {
		return "", fmt.Errorf("chart version %q cannot be an OCI tag", version)
	}
	return t, nil
}

// HelmRepoChartRef is where a chart from an HTTP(S) Helm repository is
// stored in the edge registry and the bundles repository: the repository
// URL's host[:port] and path, then the chart name, lowercased, tagged with
// ChartTag(version) — the name `helm push` to oci://<host>/<path> would give
// it. "https://charts.example.com/stable", "cert-manager", "1.15.0" →
// charts.example.com/stable/cert-manager:1.15.0. It fails for a URL that is
// not http(s), has credentials, a query or fragment, or a name that is not
// a valid repository path.
func HelmRepoChartRef(repoURL, name, version string) (imageref.Ref, error) {
	p, err := HelmRepoPath(repoURL)
	if err != nil {
		return imageref.Ref{}, err
	}
	if name == "" || strings.ContainsAny(name, "/:@") {
		return imageref.Ref{}, fmt.Errorf("chart name %q: want one path component", name)
	}
	tag, err := ChartTag(version)
	if err != nil {
		return imageref.Ref{}, err
	}
	s := strings.ToLower(p+"/"+name) + ":" + tag
	r, err := imageref.Parse(s)
	if err != nil {
		return imageref.Ref{}, fmt.Errorf("chart %s from %s: %w", name, repoURL, err)
	}
	if r.String() != s {
		return imageref.Ref{}, fmt.Errorf("chart %s from %s: %q is not a fully qualified reference", name, repoURL, s)
	}
	return r, nil
}

// HelmRepoPath returns "<host[:port]>/<path>" of an HTTP(S) Helm repository
// URL, without a trailing slash and not lowercased: the key the edge serves
// the repository under (/helm/<HelmRepoPath>/index.yaml).
func HelmRepoPath(repoURL string) (string, error) {
	u, err := url.Parse(repoURL)
	if err != nil {
		return "", fmt.Errorf("helm repository URL %q: %w", repoURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("helm repository URL %q: scheme %q, want http or https", repoURL, u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("helm repository URL %q: want http(s)://host[:port][/path] without credentials, query or fragment", repoURL)
	}
	p := strings.Trim(u.Path, "/")
	for _, seg := range strings.Split(p, "/") {
		if p != "" && (seg == "" || seg == "." || seg == "..") {
			return "", fmt.Errorf("helm repository URL %q: bad path segment %q", repoURL, seg)
		}
	}
	if p == "" {
		return u.Host, nil
	}
	return u.Host + "/" + p, nil
}
