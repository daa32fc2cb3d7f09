// Package e2e proves the whole story with the real thing: a Kubernetes API
// server (etcd + kube-apiserver), the real Argo CD (repo-server and
// application-controller) syncing through the real `ballast edge`'s git
// mirror, stopped by ballast's PreSync gate until a revision's images are
// aboard, then deploying, then rolling back with no link. Only the kubelet
// is missing: a small job runner runs the hook Job's `ballast verify`.
//
// Run with `make e2e-deps e2e-argocd` (see docs/e2e.md).
package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/testutil/cosigncli"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/toxiproxy"
)

const (
	repoName = "fleet/apps"
	appName  = "apps"
	// hookImage is ballast's own image as the hook Job names it. It lives
	// in the upstream registry and is bundled like any other image: the
	// edge needs it to run the hook. The job runner ignores it.
	hookImage = "ballast-dev/ballast:e2e"
)

// stack is everything one story runs against.
type stack struct {
	t       *testing.T
	deps    deps
	dir     string
	logs    string
	ballast string
	cluster *cluster
	runner  *jobRunner

	git      *gitserver.Server
	repo     *gitserver.Repo
	reg      *regserver.Server
	link     *toxiproxy.Proxy
	work     string // the CI checkout
	edgeHTTP string // 127.0.0.1:port
	edgeReg  string // 127.0.0.1:port
	upstream string // the repository's upstream URL
	hookYAML []byte // the PreSync hook Job from `ballast install`
	appYAML  []byte // the Application from `ballast install`

	// trustKey and trustPub, when set, make the edge require bundle
	// signatures by trustPub (edge config trust) and bundle sign with
	// trustKey (docs/trust.md).
	trustKey, trustPub string
	unsigned           bool // bundle without --sign-key even with trustKey
}

// newStack starts the cluster, Argo CD, the upstream git and registry, the
// link and `ballast edge`, and applies what `ballast install` generates for
// Argo CD (repository Secret, verify RBAC). gate turns on readiness-gated
// refs for the repository.
func newStack(t *testing.T, gate bool, opts ...func(*stack)) *stack {
	d := findDeps(t)
	gitserver.RequireGit(t)
	s := &stack{t: t, dir: t.TempDir(), deps: d}
	for _, o := range opts {
		o(s)
	}
	s.logs = filepath.Join(s.dir, "logs")
	if d := os.Getenv("BALLAST_E2E_LOGS"); d != "" {
		// Keep every component's log after the test.
		s.logs = filepath.Join(d, t.Name())
	}
	if err := os.MkdirAll(s.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	s.ballast = ballastBinary(t, s.dir)

	start := time.Now()
	s.cluster = startCluster(t, d, s.dir, s.logs)
	startArgoCD(t, d, s.cluster, s.dir, s.logs)
	s.runner = startJobRunner(t, s.cluster.kube, "default", s.ballast, s.cluster.kubeconfig, filepath.Join(s.logs, "jobs.log"))
	t.Cleanup(func() {
		for _, r := range s.runner.Runs() {
			t.Logf("hook run at +%.1fs: ok=%v %s", r.At.Sub(start).Seconds(), r.OK, lastLine(r.Output))
		}
	})
	t.Logf("kube-apiserver + Argo CD up in %.1fs", time.Since(start).Seconds())
	s.startEdge(gate)
	s.cluster.applyYAML(t, "argocd", s.generated("repositories.yaml"))
	s.cluster.applyYAML(t, "argocd", s.generated("verify-rbac.yaml"))
	return s
}

// startEdge starts the upstream git and registry, the link, and `ballast
// edge`, and runs `ballast install` for its config.
func (s *stack) startEdge(gate bool) {
	t := s.t
	// The cloud: upstream git and registry. The edge reaches the registry
	// through the link, git directly: the story cuts the link for images
	// while the mirror still learns of new commits.
	s.git = gitserver.New(t)
	s.repo = s.git.CreateRepo(t, repoName)
	s.upstream = s.git.URL(repoName)
	s.reg = regserver.Start(t, regserver.Options{})
	s.link = toxiproxy.Start(t, s.reg.Addr)
	s.pushImage(hookImage)

	s.edgeHTTP = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.edgeReg = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	edgeYAML := filepath.Join(s.dir, "edge.yaml")
	tokenFile := filepath.Join(s.dir, "api-token")
	tok, err := apiauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, tokenFile, tok.Secret()+"\n")
	writeFile(t, edgeYAML, fmt.Sprintf(`dataDir: %q
listen: {http: %q, registry: %q}
repositories:
  - url: %q
    pollInterval: 2s
    bundles: %q
    track: [refs/heads/main]
    gate: %v
upstreamRegistries:
  %q: {insecure: true}
platforms: [linux/amd64]
api: {tokenFile: %q}
`, filepath.Join(s.dir, "edge"), s.edgeHTTP, s.edgeReg, s.upstream, s.link.Addr+"/fleet/apps-bundles", gate, s.link.Addr, tokenFile))
	if s.trustPub != "" {
		f, err := os.OpenFile(edgeYAML, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fmt.Fprintf(f, "trust:\n  publicKeys: [%q]\n  requireSignatures: true\n", s.trustPub)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	// The daemon and the hook Job share one API token: install puts the
	// daemon's into the Secret the hook mounts.
	s.ballastRun("install", "--config", edgeYAML, "--output-dir", filepath.Join(s.dir, "install"), "--image", s.reg.Addr+"/"+hookImage,
		"--api-token-file", tokenFile)
	s.hookYAML, s.appYAML = s.generated("presync-hook.yaml"), s.generated("application-example.yaml")

	edge := startProc(t, s.logs, "ballast-edge", s.ballast, []string{"HOME=" + s.dir}, "edge", "--config", edgeYAML)
	plain := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, 30*time.Second, "ballast edge ready", func() (bool, error) {
		return httpOK(t.Context(), "http://"+s.edgeHTTP+"/healthz", plain)
	}, edge)
}

// generated is the file argocd/name that `ballast install` wrote, with the
// daemon's Service names pointing at its loopback addresses.
func (s *stack) generated(name string) []byte {
	return inCluster(readFile(s.t, filepath.Join(s.dir, "install", "argocd", name)), s.edgeHTTP, s.edgeRegName())
}

// edgeRegName is the edge registry as Argo CD names it: localhost:port
// rather than 127.0.0.1:port. Argo CD v3.2.11 matches a repoURL to a
// credential template by URL prefix after url.Parse, which fails for a
// scheme-less "127.0.0.1:port/…" (a first path segment with a colon), so
// no template would ever match an IP address; a host name such as the
// in-cluster Service name that `ballast install` writes parses (docs/e2e.md).
func (s *stack) edgeRegName() string { return "localhost:" + portOf(s.edgeReg) }

// ballastBinary is $BALLAST_BIN, or ballast built from this checkout.
func ballastBinary(t *testing.T, dir string) string {
	if b := os.Getenv("BALLAST_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(dir, "ballast")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ballast")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ballast: %v\n%s", err, out)
	}
	return bin
}

// ballastRun runs the ballast CLI and fails the test if it fails.
func (s *stack) ballastRun(args ...string) string {
	s.t.Helper()
	out, err := s.ballastTry(args...)
	if err != nil {
		s.t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *stack) ballastTry(args ...string) (string, error) {
	cmd := exec.Command(s.ballast, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir}
	if s.trustKey != "" {
		cmd.Env = append(cmd.Env, "COSIGN_PASSWORD="+cosigncli.Password)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pushImage puts a small random linux/amd64 image at repo:tag in the
// upstream registry (the stand-in for Docker Hub and the app's registry).
func (s *stack) pushImage(repoTag string) {
	s.t.Helper()
	ref, err := name.ParseReference(s.reg.Addr+"/"+repoTag, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := remote.Write(ref, testimage.Image(s.t, "linux/amd64", 2, 512<<10)); err != nil {
		s.t.Fatalf("push %s: %v", ref, err)
	}
}

// commit pushes a revision of the app (a Deployment running image, and the
// PreSync hook Job from `ballast install`) and returns its SHA.
func (s *stack) commit(image, message string) string {
	sha := s.repo.Commit("main", map[string]string{
		"web.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {revision: %q}}
    spec:
      containers:
      - {name: web, image: %q}
`, message, image),
		"ballast-verify.yaml": string(s.hookYAML),
	})
	s.t.Logf("upstream git: %s = %s", message, sha)
	return sha
}

// bundle runs CI's step for sha: `ballast bundle` in a checkout.
func (s *stack) bundle(sha string) {
	s.t.Helper()
	if s.work == "" {
		s.work = filepath.Join(s.dir, "ci-checkout")
		gitserver.Git(s.t, "", "clone", "--quiet", s.upstream, s.work)
	}
	gitserver.Git(s.t, s.work, "fetch", "--quiet", "origin")
	args := []string{"bundle", "--repo", s.work, "--revision", sha, "--path", ".", "--insecure",
		"--to", s.reg.Addr + "/fleet/apps-bundles"}
	if s.trustKey != "" && !s.unsigned {
		args = append(args, "--sign-key", s.trustKey)
	}
	s.ballastRun(args...)
}

// ready reports whether the edge has sha and its complete bundle (the
// gate's own check, without recording anything).
func (s *stack) ready(sha string) (bool, error) {
	out, err := s.ballastTry("verify", "--repo", s.upstream, "--revision", sha, "--mirror", "http://"+s.edgeHTTP,
		"--registry", s.edgeReg, "--no-report", "--timeout", "5s")
	if err != nil {
		return false, fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	return true, nil
}

// appStatus is what the test reads of the Application.
type appStatus struct {
	Phase, Revision, Message, Sync, Target string
	Revisions                              []string // syncResult.revisions of a multi-source Application
	Conditions                             []string
}

func (s *stack) app() appStatus { return s.appNamed(appName) }

// appNamed reads the Application name in namespace argocd.
func (s *stack) appNamed(name string) appStatus {
	s.t.Helper()
	o, err := s.cluster.dyn.Resource(applicationsGVR).Namespace("argocd").Get(s.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("get application %s: %v", name, err)
	}
	a := appStatus{
		Phase:    str(o.Object, "status", "operationState", "phase"),
		Revision: str(o.Object, "status", "operationState", "syncResult", "revision"),
		Message:  str(o.Object, "status", "operationState", "message"),
		Sync:     str(o.Object, "status", "sync", "status"),
		Target:   str(o.Object, "spec", "source", "targetRevision"),
	}
	a.Revisions, _, _ = unstructured.NestedStringSlice(o.Object, "status", "operationState", "syncResult", "revisions")
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		a.Conditions = append(a.Conditions, fmt.Sprintf("%v: %v", m["type"], m["message"]))
	}
	return a
}

// waitSynced waits for a finished successful sync of sha.
func (s *stack) waitSynced(sha string, timeout time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	waitFor(s.t, timeout, "Application synced to "+sha, func() (bool, error) {
		a := s.app()
		if a.Phase == "Succeeded" && a.Revision == sha {
			return true, nil
		}
		return false, fmt.Errorf("%+v", a)
	})
	return time.Since(start)
}

// image is the image the Deployment carries now.
func (s *stack) image() string {
	s.t.Helper()
	d, err := s.cluster.kube.AppsV1().Deployments("default").Get(s.t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("get deployment web: %v", err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// patchApp merge-patches the Application.
func (s *stack) patchApp(patch map[string]any) {
	s.t.Helper()
	b, err := json.Marshal(patch)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.cluster.dyn.Resource(applicationsGVR).Namespace("argocd").Patch(s.t.Context(), appName, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		s.t.Fatalf("patch application: %v", err)
	}
}

// failedRunsSince counts failed hook runs after t0.
func (s *stack) failedRunsSince(t0 time.Time) int {
	n := 0
	for _, r := range s.runner.Runs() {
		if !r.OK && r.At.After(t0) {
			n++
		}
	}
	return n
}

// deployRev1 commits, bundles and brings revision 1 to the edge, creates
// the Application and waits for Argo CD to sync it.
func (s *stack) deployRev1(image1 string) string {
	s.t.Helper()
	s.pushImage("app/web:rev1")
	rev1 := s.commit(image1, "rev1")
	s.bundle(rev1)
	waitFor(s.t, 90*time.Second, "edge has rev1 and its bundle", func() (bool, error) { return s.ready(rev1) })
	s.cluster.applyYAML(s.t, "argocd", s.appYAML)
	took := s.waitSynced(rev1, 120*time.Second)
	if got := s.image(); got != image1 {
		s.t.Fatalf("after rev1: deployment image %s, want %s", got, image1)
	}
	s.t.Logf("TIMING rev1: Application created → Succeeded with rev1 in %.1fs", took.Seconds())
	return rev1
}

// mirrorHas reports whether the edge's mirror holds commit sha.
func (s *stack) mirrorHas(sha string) (bool, error) {
	id := strings.TrimSuffix(strings.TrimPrefix(s.upstream, "http://"), ".git")
	return httpOK(s.t.Context(), "http://"+s.edgeHTTP+"/api/v1/repos/"+id+"/commits/"+sha, &http.Client{Timeout: 2 * time.Second})
}

// hardRefresh asks Argo CD to re-read the repository now and waits until
// it has.
func (s *stack) hardRefresh() {
	s.t.Helper()
	s.patchApp(map[string]any{"metadata": map[string]any{"annotations": map[string]any{"argocd.argoproj.io/refresh": "hard"}}})
	waitFor(s.t, 60*time.Second, "hard refresh", func() (bool, error) {
		o, err := s.cluster.dyn.Resource(applicationsGVR).Namespace("argocd").Get(s.t.Context(), appName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if _, pending := o.GetAnnotations()["argocd.argoproj.io/refresh"]; pending {
			return false, fmt.Errorf("refresh pending")
		}
		return true, nil
	})
}

// TestArgoCDGate is the story: deploy, a revision blocked by the gate until
// its images are aboard, then deployed with no human action, then a
// rollback with upstream gone.
func TestArgoCDGate(t *testing.T) {
	s := newStack(t, false)
	image1, image2 := s.reg.Addr+"/app/web:rev1", s.reg.Addr+"/app/web:rev2"

	// 1. Revision 1, bundled and brought to the edge, is synced.
	rev1 := s.deployRev1(image1)

	// 2. Revision 2 while the link to the registry is down: the mirror has
	// it, its bundle is not complete, the hook fails, rev1 stays.
	s.link.Add("down", "reset_peer", `{"timeout":0}`)
	s.pushImage("app/web:rev2")
	t2 := time.Now()
	rev2 := s.commit(image2, "rev2")
	s.bundle(rev2)
	// Argo CD attempts rev2, the hook fails, and the operation waits to
	// retry (phase Running with retry.limit -1).
	var a appStatus
	waitFor(t, 120*time.Second, "the gate fails rev2 and Argo CD retries", func() (bool, error) {
		a = s.app()
		if a.Phase == "Succeeded" && a.Revision == rev2 {
			t.Fatalf("rev2 synced while its bundle was incomplete: %+v", a)
		}
		if s.failedRunsSince(t2) > 0 && a.Revision == rev2 && strings.Contains(a.Message, "Retrying attempt") {
			return true, nil
		}
		return false, fmt.Errorf("%+v", a)
	})
	if got := s.image(); got != image1 {
		t.Fatalf("while rev2 is blocked: deployment image %s, want still %s", got, image1)
	}
	t.Logf("rev2 blocked by the gate (%d failed hook run(s)); application: phase=%s revision=%s message=%q", s.failedRunsSince(t2), a.Phase, a.Revision, a.Message)

	// 3. The link comes back: the bundle completes and Argo CD's retry
	// (refresh: true) syncs rev2 with no human action.
	s.link.Remove("down")
	t3 := time.Now()
	waitFor(t, 120*time.Second, "edge completes rev2's bundle", func() (bool, error) { return s.ready(rev2) })
	bundled := time.Since(t3)
	s.waitSynced(rev2, 240*time.Second)
	if got := s.image(); got != image2 {
		t.Fatalf("after rev2: deployment image %s, want %s", got, image2)
	}
	t.Logf("TIMING rev2: commit → Succeeded in %.1fs (link down for part of it); link restored → bundle complete in %.1fs, → Succeeded in %.1fs",
		time.Since(t2).Seconds(), bundled.Seconds(), time.Since(t3).Seconds())

	// 4. Upstream git and registry gone: Argo CD still reconciles through
	// the mirror, and a rollback to rev1 passes the gate.
	s.git.Stop()
	s.reg.Stop()
	s.hardRefresh()
	a = s.app()
	if a.Sync == "Unknown" || a.Sync == "" {
		t.Fatalf("upstream down: application sync status %q (conditions %v), want it reconciled through the mirror", a.Sync, a.Conditions)
	}
	t4 := time.Now()
	s.patchApp(map[string]any{"spec": map[string]any{"source": map[string]any{"targetRevision": rev1}}})
	s.waitSynced(rev1, 120*time.Second)
	if got := s.image(); got != image1 {
		t.Fatalf("after rollback: deployment image %s, want %s", got, image1)
	}
	t.Logf("TIMING rollback with upstream down: targetRevision=rev1 → Succeeded in %.1fs (sync status before: %s)", time.Since(t4).Seconds(), a.Sync)
}

// TestArgoCDGatedRefs: with readiness-gated refs the mirror advertises
// rev2 only once its bundle is complete, so Argo CD never attempts it
// early (no failed hook run at all) and moves to it by itself afterwards.
func TestArgoCDGatedRefs(t *testing.T) {
	s := newStack(t, true)
	image1, image2 := s.reg.Addr+"/app/web:rev1", s.reg.Addr+"/app/web:rev2"
	rev1 := s.deployRev1(image1)

	s.link.Add("down", "reset_peer", `{"timeout":0}`)
	s.pushImage("app/web:rev2")
	t2 := time.Now()
	rev2 := s.commit(image2, "rev2")
	s.bundle(rev2)
	waitFor(t, 60*time.Second, "the mirror fetches rev2", func() (bool, error) { return s.mirrorHas(rev2) })
	// Argo CD looks at the mirror now that it holds rev2 (and again on its
	// own every 10 s while the link is down).
	s.hardRefresh()
	time.Sleep(15 * time.Second)
	if a := s.app(); a.Phase != "Succeeded" || a.Revision != rev1 || a.Sync != "Synced" || s.image() != image1 {
		t.Fatalf("while rev2 is gated: want rev1 Succeeded and Synced, image %s; got %+v, image %s", image1, a, s.image())
	}
	if n := s.failedRunsSince(t2); n != 0 {
		t.Fatalf("%d failed hook run(s) while rev2 was gated: Argo CD saw rev2 too early", n)
	}

	s.link.Remove("down")
	t3 := time.Now()
	s.waitSynced(rev2, 180*time.Second)
	if got := s.image(); got != image2 {
		t.Fatalf("after rev2: deployment image %s, want %s", got, image2)
	}
	if n := s.failedRunsSince(t2); n != 0 {
		t.Fatalf("%d failed hook run(s) for rev2 with gated refs, want 0", n)
	}
	t.Logf("TIMING gated rev2: commit → Succeeded in %.1fs; link restored → Succeeded in %.1fs; failed operations: 0",
		time.Since(t2).Seconds(), time.Since(t3).Seconds())
}

// TestArgoCDTrustGate: with signatures required at the edge, a revision
// whose bundle is not signed is blocked by the gate (the hook's verify
// names the trust policy) and the running revision stays; once CI signs
// the same bundle, Argo CD's retry deploys it with no other action.
func TestArgoCDTrustGate(t *testing.T) {
	cli := cosigncli.Find(t)
	key, pub := cli.KeyPair(t)
	s := newStack(t, false, func(s *stack) { s.trustKey, s.trustPub = key, pub })
	image1, image2 := s.reg.Addr+"/app/web:rev1", s.reg.Addr+"/app/web:rev2"
	s.deployRev1(image1)

	s.pushImage("app/web:rev2")
	t2 := time.Now()
	rev2 := s.commit(image2, "rev2")
	s.unsigned = true
	s.bundle(rev2)
	var a appStatus
	waitFor(t, 120*time.Second, "the gate fails the unsigned rev2 and Argo CD retries", func() (bool, error) {
		a = s.app()
		if a.Phase == "Succeeded" && a.Revision == rev2 {
			t.Fatalf("unsigned rev2 synced: %+v", a)
		}
		if s.failedRunsSince(t2) > 0 && a.Revision == rev2 && strings.Contains(a.Message, "Retrying attempt") {
			return true, nil
		}
		return false, fmt.Errorf("%+v", a)
	})
	if got := s.image(); got != image1 {
		t.Fatalf("while unsigned rev2 is blocked: deployment image %s, want still %s", got, image1)
	}
	if _, err := s.ready(rev2); err == nil || !strings.Contains(err.Error(), "untrusted") {
		t.Fatalf("verify of unsigned rev2: %v, want NOT READY naming the trust policy", err)
	}
	t.Logf("unsigned rev2 blocked by the gate: %v", func() error { _, err := s.ready(rev2); return err }())

	// CI signs the same bundle (a re-run copies nothing, writes the
	// signature): the next pass lands it and Argo CD's retry deploys it.
	s.unsigned = false
	t3 := time.Now()
	s.bundle(rev2)
	s.waitSynced(rev2, 240*time.Second)
	if got := s.image(); got != image2 {
		t.Fatalf("after signing rev2: deployment image %s, want %s", got, image2)
	}
	t.Logf("TIMING signed rev2: signature pushed → Succeeded in %.1fs", time.Since(t3).Seconds())
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
