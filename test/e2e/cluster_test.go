package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Versions of the components, as test/e2e/deps/build.sh builds them.
const (
	etcdVersion      = "v3.6.13"
	kubeVersion      = "v1.37.2"
	argocdVersion    = "v3.2.11"
	helmVersion      = "v3.22.0"
	kustomizeVersion = "v5.8.1"
)

// deps are the paths of the built components.
type deps struct {
	etcd, apiserver, argocd string
	argocdManifests         string // manifests/ of the argo-cd module source
	redis                   string
	helm                    string // the helm CLI that Argo CD's repo-server runs
	// kustomize is the CLI the repo-server runs for kustomizations; only
	// the tests that need it (remote bases) require it.
	kustomize string
}

// findDeps locates what `make e2e-deps` built. The test runs only when
// BALLAST_E2E_ARGOCD=1 (make e2e-argocd sets it): it starts a whole
// Kubernetes control plane and Argo CD, and needs ~15 min of builds once.
// When asked to run, a missing component fails the test rather than
// skipping it.
func findDeps(t *testing.T) deps {
	t.Helper()
	if os.Getenv("BALLAST_E2E_ARGOCD") != "1" {
		t.Skip("SKIPPED: the Argo CD + Kubernetes end-to-end test runs only with BALLAST_E2E_ARGOCD=1; run `make e2e-deps e2e-argocd`")
	}
	cache := os.Getenv("BALLAST_E2E_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "ballast", "e2e")
	}
	d := deps{
		etcd:            filepath.Join(cache, "etcd-"+etcdVersion, "etcd"),
		apiserver:       filepath.Join(cache, "kube-apiserver-"+kubeVersion, "kube-apiserver"),
		argocd:          filepath.Join(cache, "argocd-"+argocdVersion, "argocd"),
		argocdManifests: filepath.Join(cache, "argocd-"+argocdVersion, "manifests"),
		helm:            filepath.Join(cache, "helm-"+helmVersion, "helm"),
		kustomize:       filepath.Join(cache, "kustomize-"+kustomizeVersion, "kustomize"),
	}
	for _, p := range []string{d.etcd, d.apiserver, d.argocd, d.argocdManifests, d.helm} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: build the end-to-end dependencies first: make e2e-deps", err)
		}
	}
	var err error
	if d.redis, err = exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is needed (apt-get install redis-server): %v", err)
	}
	return d
}

// cluster is a Kubernetes control plane with no nodes: etcd and
// kube-apiserver as local processes, an admin token, and clients.
type cluster struct {
	url        string // https://127.0.0.1:port
	kubeconfig string // path of an admin kubeconfig
	cfg        *rest.Config
	kube       kubernetes.Interface
	dyn        dynamic.Interface
}

func startCluster(t *testing.T, d deps, dir, logs string) *cluster {
	t.Helper()
	ctx := t.Context()
	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcd := startProc(t, logs, "etcd", d.etcd, nil,
		"--name=e2e", "--data-dir="+filepath.Join(dir, "etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdClient),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdClient),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-cluster=e2e=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync", "--log-level=warn")
	plain := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, 60*time.Second, "etcd healthy", func() (bool, error) {
		return httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", etcdClient), plain)
	}, etcd)

	token := randomHex(t)
	tokenFile := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokenFile, token+`,admin,admin,"system:masters"`+"\n")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sa.key"), string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	writeFile(t, filepath.Join(dir, "sa.pub"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))

	port := freePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	api := startProc(t, logs, "kube-apiserver", d.apiserver, nil,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClient),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--token-auth-file="+tokenFile,
		"--disable-admission-plugins=ServiceAccount",
		"--service-account-issuer="+url+"/",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		// Only loopback here: no address to advertise for the kubernetes
		// Service's endpoints, which nothing in this test uses.
		"--endpoint-reconciler-type=none")
	c := &cluster{url: url, kubeconfig: filepath.Join(dir, "kubeconfig")}
	c.cfg = &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 50, Burst: 100}
	tlsClient := &http.Client{Timeout: 2 * time.Second, Transport: &authTransport{token: token, next: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	waitFor(t, 90*time.Second, "kube-apiserver ready", func() (bool, error) {
		return httpOK(ctx, url+"/readyz", tlsClient)
	}, api, etcd)
	writeFile(t, c.kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin, namespace: default}
current-context: e2e
`, url, token))
	if c.kube, err = kubernetes.NewForConfig(c.cfg); err != nil {
		t.Fatal(err)
	}
	if c.dyn, err = dynamic.NewForConfig(c.cfg); err != nil {
		t.Fatal(err)
	}
	// The default namespace and its ServiceAccount controller are absent
	// (no controller-manager): wait for the namespace the apiserver makes.
	waitFor(t, 30*time.Second, "namespace default", func() (bool, error) {
		_, err := c.kube.CoreV1().Namespaces().Get(ctx, "default", metav1GetOptions)
		return err == nil, err
	})
	return c
}

type authTransport struct {
	token string
	next  http.RoundTripper
}

func (a *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+a.token)
	return a.next.RoundTrip(r)
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
