package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/lfs"
)

// startArgoCD runs the parts of Argo CD that sync an Application, as local
// processes against c: Redis, argocd-repo-server and
// argocd-application-controller (argocd-server, the UI and API, is not
// needed). The CRDs, ConfigMaps and Secrets come from the argo-cd module
// source, as `kubectl apply -f install.yaml` would install them.
func startArgoCD(t *testing.T, d deps, c *cluster, dir, logs string) {
	t.Helper()
	ctx := t.Context()
	c.applyYAML(t, "", []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n"))
	for _, f := range []string{"application-crd.yaml", "appproject-crd.yaml"} {
		c.applyYAML(t, "", readFile(t, filepath.Join(d.argocdManifests, "crds", f)))
	}
	c.waitCRD(t, "applications.argoproj.io")
	c.waitCRD(t, "appprojects.argoproj.io")
	install, err := decodeYAML(readFile(t, filepath.Join(d.argocdManifests, "install.yaml")))
	if err != nil {
		t.Fatalf("argo-cd install.yaml: %v", err)
	}
	for _, o := range filterKinds(install, "ConfigMap", "Secret") {
		if o.GetName() == "argocd-secret" {
			// The server key that argocd-server would generate on first start.
			o.Object["stringData"] = map[string]any{"server.secretkey": randomHex(t)}
		}
		c.apply(t, "argocd", o)
	}
	c.applyYAML(t, "argocd", []byte(`apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ["*"]
  destinations: [{namespace: "*", server: "*"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
`))

	redisPort := freePort(t)
	redis := startProc(t, logs, "redis", d.redis, nil,
		"--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	redisAddr := fmt.Sprintf("127.0.0.1:%d", redisPort)

	// One binary, several components: it picks one by the name it was
	// invoked with.
	bin := filepath.Join(dir, "bin")
	for _, name := range []string{"argocd-repo-server", "argocd-application-controller"} {
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(d.argocd, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(dir, "argocd-home")
	tmp := filepath.Join(dir, "argocd-tmp")
	for _, p := range []string{home, tmp} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"HOME=" + home, "TMPDIR=" + tmp,
		"KUBECONFIG=" + c.kubeconfig,
		"ARGOCD_GPG_ENABLED=false",
		// The in-cluster destination (https://kubernetes.default.svc) is
		// the kubeconfig's cluster.
		"ARGOCD_FAKE_IN_CLUSTER=true",
		// timeout.reconciliation of argocd-cm, which a real install passes
		// to both the controller (how often it re-resolves the branch) and
		// the repo-server (how long it caches a resolved revision). The
		// default, 3m, would make the story wait minutes for each commit.
		"ARGOCD_RECONCILIATION_TIMEOUT=10s",
	}
	repoPort, repoMetrics, ctlMetrics := freePort(t), freePort(t), freePort(t)
	// The repo-server runs `helm` (pull, template) for chart sources: the
	// pinned one from the deps build comes first on its PATH, as the Argo CD
	// image ships its own.
	path := filepath.Dir(d.helm) + string(os.PathListSeparator) + os.Getenv("PATH")
	if _, err := os.Stat(d.kustomize); err == nil {
		// And the pinned kustomize CLI, as the image ships one.
		path = filepath.Dir(d.kustomize) + string(os.PathListSeparator) + path
	}
	// The repo-server's system git config (standing for the image's
	// /etc/gitconfig; tests may append to it: repoGitConfig): git-lfs's
	// filters, as `git lfs install --system` writes them
	// (lfs.RepoServerGitConfig). Without them Argo CD syncs LFS
	// repositories with their LFS files as pointer text.
	writeFile(t, repoGitConfig(dir), lfs.RepoServerGitConfig)
	// GIT_CONFIG_GLOBAL as the Deployment patch of `ballast install` sets
	// it (argocd/repo-server-patch.yaml): git ignores a file that is not
	// there, so only the tests that write it (gitdeps) use it.
	repoEnv := append(slices.Clone(env), "PATH="+path, "GIT_CONFIG_GLOBAL="+filepath.Join(dir, "argocd-gitconfig"),
		"GIT_CONFIG_SYSTEM="+repoGitConfig(dir))
	repo := startProc(t, logs, "argocd-repo-server", filepath.Join(bin, "argocd-repo-server"), repoEnv,
		"--address", "127.0.0.1", "--port", strconv.Itoa(repoPort), "--metrics-address", "127.0.0.1", "--metrics-port", strconv.Itoa(repoMetrics),
		"--redis", redisAddr, "--disable-tls", "--loglevel", "info")
	ctl := startProc(t, logs, "argocd-application-controller", filepath.Join(bin, "argocd-application-controller"), env,
		"--namespace", "argocd",
		"--repo-server", fmt.Sprintf("127.0.0.1:%d", repoPort), "--repo-server-plaintext",
		"--redis", redisAddr, "--metrics-port", strconv.Itoa(ctlMetrics),
		"--app-resync-jitter", "0", "--loglevel", "info")
	plain := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, 60*time.Second, "argocd-repo-server healthy", func() (bool, error) {
		return httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", repoMetrics), plain)
	}, repo, redis)
	waitFor(t, 60*time.Second, "argocd-application-controller healthy", func() (bool, error) {
		return httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", ctlMetrics), plain)
	}, ctl, redis)
}

// repoGitConfig is the system git config file of the repo-server started
// with data dir dir.
func repoGitConfig(dir string) string { return filepath.Join(dir, "argocd-gitconfig") }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
