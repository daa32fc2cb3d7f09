package e2e

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
)

// The charts of the story. Each chart's Deployment runs an image from the
// upstream registry, so the bundle must carry the chart and its images.
const (
	chartRepo  = "web-repo"  // from the HTTP Helm repository
	chartOCI   = "web-oci"   // from the OCI registry (Helm's OCI form)
	chartMulti = "web-multi" // from the HTTP Helm repository, values from git ($values)
)

// chartSite says where the chart Applications read their sources.
type chartSite struct {
	helmRepo string // repoURL of the HTTP Helm repository
	ociRepo  string // Helm OCI repoURL: host[:port]/path without a scheme, with enableOCI in its repository Secret
	git      string // repoURL of the git repository that holds values/
	ns       string // destination namespace
	prefix   string // Application name prefix
}

// apps returns the three chart Applications (file name → YAML) with the
// given versions of web-repo and web-oci: a repository chart, an OCI chart
// and a multi-source chart whose value file comes from git.
func (c chartSite) apps(repoVersion, ociVersion string) map[string]string {
	app := func(name, sources string) string {
		return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s, namespace: argocd}
spec:
  project: default
  destination: {server: "https://kubernetes.default.svc", namespace: %s}
%s  syncPolicy:
    automated: {prune: true, selfHeal: true}
    retry: {limit: -1, backoff: {duration: 5s, factor: 2, maxDuration: 30s}}
`, c.prefix+name, c.ns, sources)
	}
	return map[string]string{
		chartRepo + ".yaml": app(chartRepo, fmt.Sprintf("  source: {repoURL: %q, chart: %s, targetRevision: %q}\n", c.helmRepo, chartRepo, repoVersion)),
		chartOCI + ".yaml":  app(chartOCI, fmt.Sprintf("  source: {repoURL: %q, chart: %s, targetRevision: %q}\n", c.ociRepo, chartOCI, ociVersion)),
		chartMulti + ".yaml": app(chartMulti, fmt.Sprintf(`  sources:
  - repoURL: %q
    chart: %s
    targetRevision: "1.0.0"
    helm: {valueFiles: ["$values/values/%s.yaml"]}
  - {repoURL: %q, targetRevision: main, ref: values}
`, c.helmRepo, chartMulti, chartMulti, c.git)),
	}
}

// staticServer serves a directory over HTTP on a fixed loopback address
// and can be stopped (connections refused) and started again there: the
// upstream chart repository, which the story takes away and brings back.
type staticServer struct {
	addr, dir string
	mu        sync.Mutex
	srv       *http.Server
}

func serveStatic(t *testing.T, dir string) *staticServer {
	s := &staticServer{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), dir: dir}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Start listens on the server's address again.
func (s *staticServer) Start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("chart repository on %s: %v", s.addr, err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(s.dir)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// Stop closes the listener and every connection.
func (s *staticServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// helmPush pushes a chart archive to oci://ociRepo with the pinned helm CLI
// (plain HTTP: the upstream registry is on loopback).
func (s *stack) helmPush(tgz, ociRepo string) {
	s.t.Helper()
	home := filepath.Join(s.dir, "helm-home")
	cmd := exec.Command(s.deps.helm, "push", tgz, "oci://"+ociRepo, "--plain-http")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"), "HELM_CONFIG_HOME=" + filepath.Join(home, "config"), "HELM_DATA_HOME=" + filepath.Join(home, "data")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("helm push %s oci://%s: %v\n%s", filepath.Base(tgz), ociRepo, err, out)
	}
	s.t.Logf("helm push %s: %s", filepath.Base(tgz), lastLine(string(out)))
}

// bundleConfig runs CI's step for sha with the repository's ballast.yaml
// (no --path): the Applications it lists are rendered, their charts
// resolved and carried.
func (s *stack) bundleConfig(sha string) {
	s.t.Helper()
	if s.work == "" {
		s.work = filepath.Join(s.dir, "ci-checkout")
		gitserver.Git(s.t, "", "clone", "--quiet", s.upstream, s.work)
	}
	gitserver.Git(s.t, s.work, "fetch", "--quiet", "origin")
	out := s.ballastRun("bundle", "--repo", s.work, "--revision", sha, "--insecure", "--to", s.reg.Addr+"/fleet/apps-bundles")
	s.t.Logf("ballast bundle %s: %s", sha[:12], lastLine(out))
}

// bundleCharts lists the chart entries of sha's bundle index in the
// upstream bundles repository, by bundle.Chart.String().
func (s *stack) bundleCharts(sha string) []string {
	s.t.Helper()
	ref, err := name.ParseReference(s.reg.Addr+"/fleet/apps-bundles:"+sha, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		s.t.Fatalf("bundle index %s: %v", ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		s.t.Fatalf("bundle index %s: %v", ref, err)
	}
	var out []string
	for _, d := range m.Manifests {
		a := d.Annotations
		if a[bundle.AnnotationChartRepo] == "" {
			continue
		}
		out = append(out, bundle.Chart{RepoURL: a[bundle.AnnotationChartRepo], Name: a[bundle.AnnotationChartName], Version: a[bundle.AnnotationChartVersion]}.String())
	}
	slices.Sort(out)
	return out
}

// requireBundleCharts fails the test unless sha's bundle carries want.
func (s *stack) requireBundleCharts(sha string, want ...bundle.Chart) {
	s.t.Helper()
	got := s.bundleCharts(sha)
	for _, c := range want {
		if !slices.Contains(got, c.String()) {
			s.t.Fatalf("the bundle of %s does not carry %s (chart entries: %q): `ballast bundle` must put every chart an Application names into the bundle (docs/release.md)", sha[:12], c, got)
		}
	}
}

// edgeHelmIndex reads the edge's Helm repository endpoint for an upstream
// Helm repository URL and returns its versions of chart.
func (s *stack) edgeHelmIndex(upstream, chart string) ([]string, error) {
	p, err := bundle.HelmRepoPath(upstream)
	if err != nil {
		return nil, err
	}
	url := "http://" + s.edgeHTTP + "/helm/" + p + "/index.yaml"
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var idx struct {
		Entries map[string][]struct {
			Version string   `json:"version"`
			URLs    []string `json:"urls"`
			Digest  string   `json:"digest"`
		} `json:"entries"`
	}
	if err := yaml.Unmarshal(body, &idx); err != nil {
		return nil, fmt.Errorf("GET %s: index.yaml: %w", url, err)
	}
	var versions []string
	for _, e := range idx.Entries[chart] {
		versions = append(versions, e.Version)
	}
	return versions, nil
}

// waitEdgeChart waits until the edge's Helm endpoint lists chart version.
func (s *stack) waitEdgeChart(upstream, chart, version string) {
	s.t.Helper()
	waitFor(s.t, 30*time.Second, fmt.Sprintf("the edge's Helm repository endpoint lists %s %s (GET /helm/<repo>/index.yaml)", chart, version), func() (bool, error) {
		v, err := s.edgeHelmIndex(upstream, chart)
		if err != nil {
			return false, err
		}
		return slices.Contains(v, version), fmt.Errorf("%s versions: %q", chart, v)
	})
}

// repoSecret is one Argo CD repository Secret or credential template.
type repoSecret struct {
	name, kind, url, typ, enableOCI string
}

// repoSecrets reads the Argo CD repository Secrets and credential
// templates of a YAML stream (stringData or data).
func repoSecrets(t *testing.T, data []byte) []repoSecret {
	t.Helper()
	objs, err := decodeYAML(data)
	if err != nil {
		t.Fatalf("repositories.yaml: %v", err)
	}
	var out []repoSecret
	for _, o := range filterKinds(objs, "Secret") {
		field := func(k string) string {
			if v := str(o.Object, "stringData", k); v != "" {
				return v
			}
			b, _ := base64.StdEncoding.DecodeString(str(o.Object, "data", k))
			return string(b)
		}
		out = append(out, repoSecret{name: o.GetName(), kind: o.GetLabels()["argocd.argoproj.io/secret-type"],
			url: field("url"), typ: field("type"), enableOCI: field("enableOCI")})
	}
	return out
}

// requireOCISecret fails unless one of secrets lets Argo CD pull Helm OCI
// charts from repoURL: enableOCI on a repository with that URL or a
// credential template whose URL is a prefix of it.
func requireOCISecret(t *testing.T, secrets []repoSecret, repoURL string) {
	t.Helper()
	for _, s := range secrets {
		if s.enableOCI != "true" {
			continue
		}
		if (s.kind == "repository" && s.url == repoURL) || (s.kind == "repo-creds" && strings.HasPrefix(repoURL, s.url)) {
			return
		}
	}
	t.Fatalf("`ballast install` wrote no Argo CD repository Secret or credential template with enableOCI: \"true\" covering %s (the edge registry), so Argo CD cannot pull OCI charts from the edge; Secrets written: %+v", repoURL, secrets)
}

// deploymentImages lists the container images of Deployment ns/name.
func (s *stack) deploymentImages(ns, name string) ([]string, error) {
	d, err := s.cluster.kube.AppsV1().Deployments(ns).Get(s.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		out = append(out, c.Image)
	}
	return out, nil
}

// waitChartApp waits until Application app has synced chart version (the
// first source's revision for a multi-source one) and its Deployment runs
// images.
func (s *stack) waitChartApp(app, version, ns, deployment string, images []string, timeout time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	waitFor(s.t, timeout, fmt.Sprintf("Application %s synced to chart version %s, Deployment %s/%s running %v", app, version, ns, deployment, images), func() (bool, error) {
		a := s.appNamed(app)
		rev := a.Revision
		if len(a.Revisions) > 0 {
			rev = a.Revisions[0]
		}
		if a.Phase != "Succeeded" || rev != version {
			return false, fmt.Errorf("%+v", a)
		}
		got, err := s.deploymentImages(ns, deployment)
		if err != nil {
			return false, err
		}
		return slices.Equal(got, images), fmt.Errorf("deployment images %v", got)
	})
	return time.Since(start)
}

// deleteApp deletes Application name (no cascade: it has no finalizer).
func (s *stack) deleteApp(name string) {
	s.t.Helper()
	err := s.cluster.dyn.Resource(applicationsGVR).Namespace("argocd").Delete(s.t.Context(), name, metav1.DeleteOptions{})
	if err != nil {
		s.t.Fatalf("delete application %s: %v", name, err)
	}
}

// failedRunOutputs returns the output of every failed hook run after t0.
func (s *stack) failedRunOutputs(t0 time.Time) []string {
	var out []string
	for _, r := range s.runner.Runs() {
		if !r.OK && r.At.After(t0) {
			out = append(out, r.Output)
		}
	}
	return out
}

// TestArgoCDCharts is issue 13's proof: Argo CD syncs a Helm repository
// chart, an OCI chart and a multi-source chart with $values from git, all
// from the edge, with upstream git, chart repository and registry stopped;
// a new chart version arriving while the link is down is held by the gate
// and goes through by itself once the link is back.
func TestArgoCDCharts(t *testing.T) {
	s := newStack(t, false)
	reg := s.reg.Addr
	img := func(repoTag string) string { return reg + "/" + repoTag }

	// The cloud: the images, an HTTP Helm repository (index.yaml and .tgz
	// made with Helm's library) and a chart in the OCI registry (pushed by
	// the helm CLI).
	for _, r := range []string{"app/repo:1.0.0", "app/oci:1.0.0", "app/multi:1", "app/sidecar:1"} {
		s.pushImage(r)
	}
	hr := helmrepo.Serve(t,
		helmrepo.Chart{Name: chartRepo, Version: "1.0.0", Image: img("app/repo:1.0.0")},
		// Its default image is never pushed: only the value file from git
		// names the images this chart runs.
		helmrepo.Chart{Name: chartMulti, Version: "1.0.0", Image: img("app/not-pushed:1")})
	hr.Close() // Argo CD and CI read hr.Dir through chartsUp, which can stop and start again.
	chartsUp := serveStatic(t, hr.Dir)
	helmURL := "http://" + chartsUp.addr
	ociRepo := reg + "/charts"
	s.helmPush(helmrepo.Package(t, t.TempDir(), helmrepo.Chart{Name: chartOCI, Version: "1.0.0", Image: img("app/oci:1.0.0")}), ociRepo)

	helmPath, err := bundle.HelmRepoPath(helmURL)
	if err != nil {
		t.Fatal(err)
	}
	mirror := "http://" + s.edgeHTTP + "/git/" + strings.TrimPrefix(s.upstream, "http://")
	// As the Applications name their sources in git (what CI bundles), on
	// site (only repoURLs changed, docs/charts.md), and for the first check
	// against the upstream itself.
	canonical := chartSite{helmRepo: helmURL, ociRepo: ociRepo, git: s.upstream, ns: "default"}
	site := chartSite{helmRepo: "http://" + s.edgeHTTP + "/helm/" + helmPath,
		ociRepo: s.edgeRegName() + "/" + strings.ReplaceAll(reg, ":", "_") + "/charts", git: mirror, ns: "default"}
	upstream := chartSite{helmRepo: helmURL, ociRepo: ociRepo, git: s.upstream, ns: "upstream", prefix: "up-"}

	files := func(repoVersion, ociVersion string) map[string]string {
		f := map[string]string{
			"ballast.yaml": "apps:\n  - path: site\n" +
				"  - application: apps/" + chartRepo + ".yaml\n" +
				"  - application: apps/" + chartOCI + ".yaml\n" +
				"  - application: apps/" + chartMulti + ".yaml\n",
			"values/" + chartMulti + ".yaml": fmt.Sprintf("image: %s\nsidecar: %s\n", img("app/multi:1"), img("app/sidecar:1")),
			"site/ballast-verify.yaml":       string(s.hookYAML),
		}
		for n, y := range canonical.apps(repoVersion, ociVersion) {
			f["apps/"+n] = y
		}
		for n, y := range site.apps(repoVersion, ociVersion) {
			f["site/"+n] = y
		}
		return f
	}
	rev1 := s.repo.Commit("main", files("1.0.0", "1.0.0"))
	t.Logf("upstream git: rev1 = %s", rev1)

	// 0. The fixtures are right: Argo CD renders each chart Application
	// from the upstream sources themselves (the helm CLI on the
	// repo-server's PATH, the OCI chart through an enableOCI Secret).
	t0 := time.Now()
	s.cluster.applyYAML(t, "", []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: upstream}\n"))
	s.cluster.applyYAML(t, "argocd", fmt.Appendf(nil, `apiVersion: v1
kind: Secret
metadata:
  name: upstream-oci-charts
  labels: {argocd.argoproj.io/secret-type: repository}
stringData: {type: helm, name: upstream-charts, url: %q, enableOCI: "true"}
`, ociRepo))
	for _, y := range upstream.apps("1.0.0", "1.0.0") {
		s.cluster.applyYAML(t, "argocd", []byte(y))
	}
	s.waitChartApp("up-"+chartRepo, "1.0.0", "upstream", "up-web-repo-web-repo", []string{img("app/repo:1.0.0")}, 120*time.Second)
	s.waitChartApp("up-"+chartOCI, "1.0.0", "upstream", "up-web-oci-web-oci", []string{img("app/oci:1.0.0")}, 60*time.Second)
	s.waitChartApp("up-"+chartMulti, "1.0.0", "upstream", "up-web-multi-web-multi", []string{img("app/multi:1"), img("app/sidecar:1")}, 60*time.Second)
	t.Logf("TIMING upstream: the three chart Applications synced from the upstream sources in %.1fs", time.Since(t0).Seconds())
	for _, n := range []string{chartRepo, chartOCI, chartMulti} {
		s.deleteApp("up-" + n)
	}

	// 1. CI bundles rev1: the bundle carries the three charts (and their
	// images); the edge syncs it.
	s.bundleConfig(rev1)
	s.requireBundleCharts(rev1,
		bundle.Chart{RepoURL: helmURL, Name: chartRepo, Version: "1.0.0"},
		bundle.Chart{RepoURL: ociRepo, Name: chartOCI, Version: "1.0.0"},
		bundle.Chart{RepoURL: helmURL, Name: chartMulti, Version: "1.0.0"})
	waitFor(t, 90*time.Second, "edge has rev1 and its bundle", func() (bool, error) { return s.ready(rev1) })
	s.waitEdgeChart(helmURL, chartRepo, "1.0.0")
	s.waitEdgeChart(helmURL, chartMulti, "1.0.0")
	requireOCISecret(t, repoSecrets(t, s.generated("repositories.yaml")), site.ociRepo)

	// 2. Upstream git, chart repository and registry stopped: the parent
	// Application (what `ballast install` generates, reading site/ of the
	// mirror) passes the gate and creates the three chart Applications,
	// and each syncs from the edge.
	s.git.Stop()
	s.reg.Stop()
	chartsUp.Stop()
	t2 := time.Now()
	s.applyParent()
	s.waitSynced(rev1, 120*time.Second)
	s.waitChartApp(chartRepo, "1.0.0", "default", "web-repo-web-repo", []string{img("app/repo:1.0.0")}, 120*time.Second)
	s.waitChartApp(chartOCI, "1.0.0", "default", "web-oci-web-oci", []string{img("app/oci:1.0.0")}, 60*time.Second)
	s.waitChartApp(chartMulti, "1.0.0", "default", "web-multi-web-multi", []string{img("app/multi:1"), img("app/sidecar:1")}, 60*time.Second)
	t.Logf("TIMING rev1 with every upstream stopped: parent created → three chart Applications synced from the edge in %.1fs", time.Since(t2).Seconds())

	// 3. New chart versions (web-repo and web-oci 1.1.0) arrive while the
	// link to the registry is down: the mirror has rev2, its bundle is not
	// complete, the gate fails, and the chart Applications stay at 1.0.0.
	s.git.Start(t)
	s.reg.Start()
	chartsUp.Start(t)
	s.link.Add("down", "reset_peer", `{"timeout":0}`)
	s.pushImage("app/repo:1.1.0")
	s.pushImage("app/oci:1.1.0")
	helmrepo.Package(t, hr.Dir, helmrepo.Chart{Name: chartRepo, Version: "1.1.0", Image: img("app/repo:1.1.0")})
	hr.Reindex(t)
	s.helmPush(helmrepo.Package(t, t.TempDir(), helmrepo.Chart{Name: chartOCI, Version: "1.1.0", Image: img("app/oci:1.1.0")}), ociRepo)
	t3 := time.Now()
	rev2 := s.repo.Commit("main", files("1.1.0", "1.1.0"))
	t.Logf("upstream git: rev2 = %s (web-repo and web-oci 1.1.0)", rev2)
	s.bundleConfig(rev2)
	s.requireBundleCharts(rev2,
		bundle.Chart{RepoURL: helmURL, Name: chartRepo, Version: "1.1.0"},
		bundle.Chart{RepoURL: ociRepo, Name: chartOCI, Version: "1.1.0"})
	waitFor(t, 60*time.Second, "the mirror fetches rev2", func() (bool, error) { return s.mirrorHas(rev2) })
	// The edge needs neither from here on: the chart comes in the bundle.
	s.git.Stop()
	chartsUp.Stop()
	var a appStatus
	waitFor(t, 120*time.Second, "the gate fails rev2 and Argo CD retries", func() (bool, error) {
		a = s.app()
		if a.Phase == "Succeeded" && a.Revision == rev2 {
			t.Fatalf("rev2 synced while its bundle was incomplete: %+v", a)
		}
		if len(s.failedRunOutputs(t3)) > 0 && a.Revision == rev2 && strings.Contains(a.Message, "Retrying attempt") {
			return true, nil
		}
		return false, fmt.Errorf("%+v", a)
	})
	// The bundle index lands last, once everything it names is on site,
	// so with the link down the gate reports the whole bundle missing
	// (verify names a missing chart only when an index is there without it).
	if outs := s.failedRunOutputs(t3); !strings.Contains(strings.Join(outs, "\n"), rev2[:12]) {
		t.Fatalf("the failed gate does not name rev2 %s:\n%s", rev2[:12], strings.Join(outs, "\n---\n"))
	}
	for app, want := range map[string]string{chartRepo: "1.0.0", chartOCI: "1.0.0"} {
		if got := s.appNamed(app); got.Target != want || got.Revision != want {
			t.Fatalf("while rev2 is blocked: Application %s targets %s and synced %s, want still %s", app, got.Target, got.Revision, want)
		}
	}
	if got, err := s.deploymentImages("default", "web-repo-web-repo"); err != nil || !slices.Equal(got, []string{img("app/repo:1.0.0")}) {
		t.Fatalf("while rev2 is blocked: web-repo runs %v (%v), want still %s", got, err, img("app/repo:1.0.0"))
	}
	t.Logf("rev2 blocked by the gate (%d failed hook run(s)); parent: phase=%s revision=%s message=%q", len(s.failedRunOutputs(t3)), a.Phase, a.Revision, a.Message)

	// 4. The link returns: the bundle completes, then with the registry
	// stopped too, Argo CD's retry syncs rev2 and the chart Applications
	// move to 1.1.0 from the edge, with no human action.
	s.link.Remove("down")
	t4 := time.Now()
	waitFor(t, 120*time.Second, "edge completes rev2's bundle", func() (bool, error) { return s.ready(rev2) })
	bundled := time.Since(t4)
	s.reg.Stop()
	s.waitSynced(rev2, 240*time.Second)
	s.waitChartApp(chartRepo, "1.1.0", "default", "web-repo-web-repo", []string{img("app/repo:1.1.0")}, 120*time.Second)
	s.waitChartApp(chartOCI, "1.1.0", "default", "web-oci-web-oci", []string{img("app/oci:1.1.0")}, 60*time.Second)
	t.Logf("TIMING rev2: commit → chart Applications at 1.1.0 in %.1fs (link down for part of it); link restored → bundle complete in %.1fs, → synced in %.1fs",
		time.Since(t3).Seconds(), bundled.Seconds(), time.Since(t4).Seconds())
}

// applyParent creates the Application that `ballast install` generates,
// reading the site/ directory of the repository (the hook Job and the
// chart Applications) through the mirror.
func (s *stack) applyParent() {
	s.t.Helper()
	objs, err := decodeYAML(s.appYAML)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, o := range objs {
		if err := unstructured.SetNestedField(o.Object, "site", "spec", "source", "path"); err != nil {
			s.t.Fatal(err)
		}
	}
	if len(objs) != 1 {
		s.t.Fatal(errors.New("application-example.yaml: want one Application"))
	}
	s.cluster.apply(s.t, "argocd", objs...)
}
