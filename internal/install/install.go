// Package install renders what an operator applies to run ballast on a k3s
// node with Argo CD: the edge daemon's Kubernetes objects, Argo CD's
// repository Secrets, the PreSync gate and its RBAC, an example Application,
// and the node's k3s/containerd registry configuration.
package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
)

// Options says where and how ballast runs in the cluster.
type Options struct {
	// Namespace of the edge daemon. The default value is "ballast".
	Namespace string
	// ArgoCDNamespace is where Argo CD and its Applications live. The
	// default value is "argocd".
	ArgoCDNamespace string
	// Image of ballast itself, e.g. "ghcr.io/ballast-dev/ballast:v0.1.0".
	Image string
	// Apps are the Argo CD Applications the gate protects: one PreSync hook
	// and RBAC binding each. The default is one app per repository, named
	// after the repository's last path component, deployed to "default".
	Apps []App
	// Storage is "hostPath" (default, /var/lib/ballast on the node) or "pvc".
	Storage string
	// StorageSize of the PersistentVolumeClaim. The default value is "20Gi".
	StorageSize string
	// NodeRegistry is the host:port at which containerd on the node reaches
	// the edge registry. The daemon runs with hostNetwork, so the default is
	// 127.0.0.1 and the configured registry port.
	NodeRegistry string
	// K3sDataDir is where k3s keeps its state. The default value is
	// "/var/lib/rancher/k3s".
	K3sDataDir string
	// APIToken is the daemon's API token, which state-changing API routes
	// (the gate's --activate and reports) require. It goes into a Secret
	// the daemon reads and one the hook Job mounts in each app namespace.
	// The default is a new random token: re-rendering then rotates it
	// (apply every file again).
	APIToken apiauth.Token
	// GitHosts are hosts besides the repositories' whose scp-like git URLs
	// ("git@host:org/repo") argocd-repo-server's git is sent to the mirror
	// for (submodules and remote bases on other hosts); every http(s),
	// ssh:// and git:// URL is sent there whatever its host.
	GitHosts []string

	// ConfigDir is where relative file paths in the edge config resolve
	// (the config file's directory); empty: the working directory. The
	// files the config names (credentials, trust keys, the fleet signing
	// key) are read from there into a Secret the daemon mounts.
	ConfigDir string

	// Set by defaults: the listen ports and each app's hook Job name.
	httpPort, regPort int
	hookNames         []string
}

// App is one Argo CD Application protected by the gate.
type App struct {
	Name      string // Application name, a DNS-1123 label
	Namespace string // destination namespace, where the hook Job runs
	RepoURL   string // upstream git URL as in the edge config
	Path      string // path inside the repository
}

// File is one rendered output file.
type File struct {
	Path    string // relative path, e.g. "kubernetes/edge.yaml"
	Content []byte
	// Sensitive files hold a credential (the API token Secrets): write
	// them readable by their owner only, and keep them out of git.
	Sensitive bool
}

// Labels every object carries.
var commonLabels = map[string]string{"app.kubernetes.io/name": "ballast", "app.kubernetes.io/part-of": "ballast"}

const (
	edgeName      = "ballast-edge"
	verifyName    = "ballast-verify"
	hostDataDir   = "/var/lib/ballast"
	containerData = "/var/lib/ballast"
	configMount   = "/etc/ballast"
	// apiTokenSecret is the Secret holding the API token (key "token"), in
	// the daemon's namespace and in each app namespace for the hook.
	apiTokenSecret = "ballast-api-token"
	// daemonTokenMount and hookTokenMount are where it is mounted.
	daemonTokenMount = "/etc/ballast-api"
	hookTokenMount   = "/var/run/ballast/api"
)

// memoryLimit is the daemon's memory limit; goMemLimit, its GOMEMLIMIT,
// leaves 1/8 of it for what the Go runtime does not count (git processes
// are children with their own memory, but in the same cgroup: the soft
// limit makes Go collect garbage harder before the kernel kills the pod).
var (
	memoryLimit = resource.MustParse("512Mi")
	goMemLimit  = strconv.FormatInt(memoryLimit.Value()/8*7/(1<<20), 10) + "MiB"
)

func (o *Options) defaults(c *config.Config) error {
	if o.Namespace == "" {
		o.Namespace = "ballast"
	}
	if o.ArgoCDNamespace == "" {
		o.ArgoCDNamespace = "argocd"
	}
	for _, ns := range []struct{ what, name string }{{"namespace", o.Namespace}, {"Argo CD namespace", o.ArgoCDNamespace}} {
		if errs := validation.IsDNS1123Label(ns.name); len(errs) > 0 {
			return fmt.Errorf("%s %q: %s", ns.what, ns.name, strings.Join(errs, "; "))
		}
	}
	if o.Image == "" {
		return fmt.Errorf("image: required")
	}
	if _, err := imageref.Parse(o.Image); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	switch o.Storage {
	case "":
		o.Storage = "hostPath"
	case "hostPath", "pvc":
	default:
		return fmt.Errorf("storage %q: want hostPath or pvc", o.Storage)
	}
	if o.StorageSize == "" {
		o.StorageSize = "20Gi"
	}
	q, err := resource.ParseQuantity(o.StorageSize)
	if err != nil {
		return fmt.Errorf("storage size %q: %w", o.StorageSize, err)
	}
	if q.Sign() <= 0 {
		return fmt.Errorf("storage size %q: must be positive", o.StorageSize)
	}
	if o.K3sDataDir == "" {
		o.K3sDataDir = "/var/lib/rancher/k3s"
	}
	if o.APIToken.IsZero() {
		t, err := apiauth.Generate()
		if err != nil {
			return err
		}
		o.APIToken = t
	}
	if !path.IsAbs(o.K3sDataDir) || strings.ContainsAny(o.K3sDataDir, "\n\r\x00") {
		return fmt.Errorf("k3s data dir %q: want an absolute path", o.K3sDataDir)
	}
	if o.httpPort, err = listenPort("listen.http", c.Listen.HTTP); err != nil {
		return err
	}
	if o.regPort, err = listenPort("listen.registry", c.Listen.Registry); err != nil {
		return err
	}
	if o.NodeRegistry == "" {
		// containerd on the node dials what the daemon bound (it runs
		// with hostNetwork): a wildcard means loopback, an address itself.
		if o.NodeRegistry, err = k3sconfig.NodeEndpoint(c.Listen.Registry); err != nil {
			return fmt.Errorf("listen.registry: %w", err)
		}
	}
	if _, err := k3sconfig.EndpointURL(o.NodeRegistry); err != nil {
		return err
	}
	if len(o.Apps) == 0 {
		o.Apps = defaultApps(c)
	}
	seen := map[string]bool{}
	for i, a := range o.Apps {
		if a.Name == "" || a.Namespace == "" || a.RepoURL == "" {
			return fmt.Errorf("app %d: name, namespace and repository are required", i)
		}
		// Argo CD also writes the name into a label value: a DNS-1123
		// label, not just a subdomain.
		if errs := validation.IsDNS1123Label(a.Name); len(errs) > 0 {
			return fmt.Errorf("app %q: name: %s", a.Name, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1123Label(a.Namespace); len(errs) > 0 {
			return fmt.Errorf("app %s: namespace %q: %s", a.Name, a.Namespace, strings.Join(errs, "; "))
		}
		if seen[a.Name] {
			return fmt.Errorf("app %s: listed twice", a.Name)
		}
		seen[a.Name] = true
		if _, ok := c.Repository(mustRepoID(a.RepoURL)); !ok {
			return fmt.Errorf("app %s: repository %s is not in the edge config", a.Name, a.RepoURL)
		}
		if a.Path == "" {
			o.Apps[i].Path = "."
		}
	}
	o.hookNames = hookJobNames(o.Apps)
	return nil
}

// listenPort is the TCP port of a listen address, which Kubernetes needs as
// a number (1–65535): ":0" (any free port, for tests) cannot be installed.
func listenPort(key, addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", key, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s %q: install needs a fixed port number (1-65535)", key, addr)
	}
	return n, nil
}

// defaultApps is one Application per repository, named after the
// repository's last path component made a DNS-1123 label; repositories
// that map to the same name get a suffix from their id.
func defaultApps(c *config.Config) []App {
	var apps []App
	count := map[string]int{}
	for _, r := range c.Repositories {
		n := dnsLabel(path.Base(strings.TrimSuffix(strings.TrimRight(r.URL, "/"), ".git")), mustRepoID(r.URL), 63)
		count[n]++
		apps = append(apps, App{Name: n, Namespace: "default", RepoURL: r.URL, Path: "."})
	}
	for i, a := range apps {
		if count[a.Name] > 1 {
			apps[i].Name = withHash(a.Name, mustRepoID(a.RepoURL), 63)
		}
	}
	return apps
}

// hookJobNames names each app's PreSync Job: "ballast-verify" where the
// app is alone in its namespace, else suffixed with the app name, so two
// apps deployed to one namespace never overwrite each other's gate. Job
// names become a label value on their pods: at most 63 characters.
func hookJobNames(apps []App) []string {
	per := map[string]int{}
	for _, a := range apps {
		per[a.Namespace]++
	}
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = verifyName
		if per[a.Namespace] > 1 {
			names[i] = dnsLabel(verifyName+"-"+a.Name, a.Namespace+"/"+a.Name, 63)
		}
	}
	return names
}

func mustRepoID(u string) string {
	id, _ := imageref.RepoID(u)
	return id
}

// dnsLabel makes s a DNS-1123 label of at most max characters: lowercase
// letters, digits and inner '-'. When characters had to be dropped for
// length, or nothing was left, a hash of key keeps the name distinct.
func dnsLabel(s, key string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" || len(out) > max {
		return withHash(out, key, max)
	}
	return out
}

// withHash appends "-" and 8 hex digits of key's SHA-256 to s, cutting s so
// that the whole stays within max characters and a valid label.
func withHash(s, key string, max int) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:4])
	if keep := max - len(h) - 1; len(s) > keep {
		s = s[:keep]
	}
	s = strings.Trim(s, "-")
	if s == "" {
		s = "x"
	}
	return s + "-" + h
}

// MirrorBase is the in-cluster URL of the edge daemon's HTTP listener.
func (o *Options) mirrorBase(c *config.Config) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", edgeName, o.Namespace, o.httpPort)
}

func (o *Options) clusterRegistry(c *config.Config) string {
	return fmt.Sprintf("%s-registry.%s.svc:%d", edgeName, o.Namespace, o.regPort)
}

// MirrorURL returns the URL at which Argo CD reaches the mirror of repoURL.
func MirrorURL(base, repoURL string) (string, error) {
	id, err := imageref.RepoID(repoURL)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + "/git/" + id + ".git", nil
}

// Render returns every file for the edge config c. rawConfig is the config
// file as written by the operator; it goes into the ConfigMap unchanged
// except for dataDir, which is set to where the volume is mounted.
func Render(c *config.Config, rawConfig []byte, o Options) ([]File, error) {
	if err := o.defaults(c); err != nil {
		return nil, err
	}
	filesSecret, rewrites, err := o.configFiles(c)
	if err != nil {
		return nil, err
	}
	edgeCfg, err := inClusterConfig(rawConfig, rewrites)
	if err != nil {
		return nil, err
	}
	var files []File
	add := func(p string, objs ...any) error {
		b, err := yamlStream(objs...)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		sensitive := false
		for _, o := range objs {
			if s, ok := o.(*corev1.Secret); ok && (s.Name == apiTokenSecret || s.Name == configFilesSecret) {
				sensitive = true
			}
		}
		files = append(files, File{Path: p, Content: b, Sensitive: sensitive})
		return nil
	}
	if err := add("kubernetes/edge.yaml", o.edgeObjects(c, edgeCfg, filesSecret)...); err != nil {
		return nil, err
	}
	secrets, err := o.repositorySecrets(c)
	if err != nil {
		return nil, err
	}
	if err := add("argocd/repositories.yaml", secrets...); err != nil {
		return nil, err
	}
	gitCM, gitPatch, err := o.repoServerGit(c)
	if err != nil {
		return nil, err
	}
	if err := add("argocd/repo-server-gitconfig.yaml", gitCM); err != nil {
		return nil, err
	}
	if err := add("argocd/repo-server-patch.yaml", gitPatch); err != nil {
		return nil, err
	}
	if err := add("argocd/verify-rbac.yaml", o.verifyRBAC()...); err != nil {
		return nil, err
	}
	var hooks, apps []any
	for i, a := range o.Apps {
		hooks = append(hooks, o.hookJob(c, i))
		app, err := o.application(c, a)
		if err != nil {
			return nil, err
		}
		apps = append(apps, app)
	}
	if err := add("argocd/presync-hook.yaml", hooks...); err != nil {
		return nil, err
	}
	if err := add("argocd/application-example.yaml", apps...); err != nil {
		return nil, err
	}
	files = append(files, File{Path: "argocd/presync-hook-helm.tpl", Content: []byte(o.helmHook(c))})
	k3s, err := o.nodeFiles(c)
	if err != nil {
		return nil, err
	}
	files = append(files, k3s...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// inClusterConfig rewrites dataDir to the mounted volume, api.tokenFile
// to the mounted token Secret and every other file the config names to its
// mounted copy (rewrites, from configFiles), and drops nothing else: the
// operator's comments are lost, keys and values are kept.
func inClusterConfig(raw []byte, rewrites []fileRewrite) (string, error) {
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("edge config: %w", err)
	}
	m["dataDir"] = containerData
	for _, r := range rewrites {
		if err := setField(m, r.keys, r.path); err != nil {
			return "", fmt.Errorf("edge config: %v: %w", r.keys, err)
		}
	}
	api, _ := m["api"].(map[string]any)
	if api == nil {
		api = map[string]any{}
	}
	api["tokenFile"] = daemonTokenMount + "/token"
	m["api"] = api
	b, err := yaml.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func meta(name, ns string) metav1.ObjectMeta {
	labels := map[string]string{}
	for k, v := range commonLabels {
		labels[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}
}

func (o *Options) edgeObjects(c *config.Config, edgeCfg string, files *corev1.Secret) []any {
	httpPort, regPort := o.httpPort, o.regPort
	selector := map[string]string{"app.kubernetes.io/name": "ballast", "app.kubernetes.io/component": "edge"}
	podLabels := map[string]string{"app.kubernetes.io/part-of": "ballast"}
	for k, v := range selector {
		podLabels[k] = v
	}
	one := int32(1)
	nonRoot := false
	var volume corev1.Volume
	var objs []any
	objs = append(objs,
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: meta(o.Namespace, "")},
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(edgeName, o.Namespace)},
		&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: meta(edgeName, o.Namespace),
			Data: map[string]string{"edge.yaml": edgeCfg}},
		o.tokenSecret(o.Namespace),
	)
	mounts := []corev1.VolumeMount{
		{Name: "data", MountPath: containerData},
		{Name: "config", MountPath: configMount, ReadOnly: true},
		{Name: "api-token", MountPath: daemonTokenMount, ReadOnly: true},
	}
	var filesVolume []corev1.Volume
	if files != nil {
		objs = append(objs, files)
		mounts = append(mounts, corev1.VolumeMount{Name: "config-files", MountPath: configFilesMount, ReadOnly: true})
		mode := int32(0o400)
		filesVolume = append(filesVolume, corev1.Volume{Name: "config-files", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: configFilesSecret, DefaultMode: &mode}}})
	}
	if o.Storage == "pvc" {
		objs = append(objs, &corev1.PersistentVolumeClaim{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"}, ObjectMeta: meta(edgeName+"-data", o.Namespace),
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(o.StorageSize)}},
			},
		})
		volume = corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: edgeName + "-data"}}}
	} else {
		t := corev1.HostPathDirectoryOrCreate
		volume = corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDataDir, Type: &t}}}
	}
	probe := func(p string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromInt(httpPort)}}, PeriodSeconds: 10}
	}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(edgeName, o.Namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			// Two daemons must never share one data dir.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName: edgeName,
					// containerd on the node pulls from 127.0.0.1:<registry
					// port>: host networking makes that the daemon itself,
					// with no dependency on kube-proxy or CNI being up.
					HostNetwork: true,
					DNSPolicy:   corev1.DNSClusterFirstWithHostNet,
					Containers: []corev1.Container{{
						Name:            "edge",
						Image:           o.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"edge", "--config", configMount + "/edge.yaml", "--log-format", "json"},
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: int32(httpPort)},
							{Name: "registry", ContainerPort: int32(regPort)},
						},
						ReadinessProbe: probe("/readyz"),
						LivenessProbe:  probe("/healthz"),
						Env:            []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: goMemLimit}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("50m")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: memoryLimit},
						},
						VolumeMounts:    mounts,
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &nonRoot},
					}},
					Volumes: append([]corev1.Volume{volume, {Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: edgeName}}}}, tokenVolume()}, filesVolume...),
				},
			},
		},
	}
	objs = append(objs, dep,
		&corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: meta(edgeName, o.Namespace),
			Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Name: "http", Port: int32(httpPort), TargetPort: intstr.FromString("http")}}}},
		&corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: meta(edgeName+"-registry", o.Namespace),
			Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Name: "registry", Port: int32(regPort), TargetPort: intstr.FromString("registry")}}}},
	)
	return objs
}

func (o *Options) repositorySecrets(c *config.Config) ([]any, error) {
	var out []any
	names := map[string]int{}
	for _, r := range c.Repositories {
		names[secretName(mustRepoID(r.URL))]++
	}
	for _, r := range c.Repositories {
		u, err := MirrorURL(o.mirrorBase(c), r.URL)
		if err != nil {
			return nil, err
		}
		id := mustRepoID(r.URL)
		name := secretName(id)
		if names[name] > 1 {
			// Two repositories whose ids differ only in what a DNS name
			// cannot hold ("a_b" and "a-b"): keep both.
			name = withHash(name, id, 63)
		}
		m := meta(name, o.ArgoCDNamespace)
		m.Labels["argocd.argoproj.io/secret-type"] = "repository"
		out = append(out, &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: m,
			// enableLfs: the mirror serves the LFS objects of what it
			// serves (docs/mirror.md "Git LFS"); for a repository without
			// LFS files git-lfs finds no pointer and asks for nothing.
			StringData: map[string]string{"type": "git", "url": u, "name": id, "enableLfs": "true"},
		})
	}
	for _, s := range ChartCredentialTemplates(o.ArgoCDNamespace, o.mirrorBase(c), o.clusterRegistry(c)) {
		out = append(out, s)
	}
	return out, nil
}

// Names of the credential templates ChartCredentialTemplates writes.
const (
	HelmRepoCredsName  = "ballast-edge-helm"
	HelmOCICredsName   = "ballast-edge-helm-oci"
	OCISourceCredsName = "ballast-edge-oci"
)

// ChartCredentialTemplates returns the Argo CD repository credential
// templates (Secrets labelled argocd.argoproj.io/secret-type: repo-creds,
// in namespace ns) that make every chart and OCI source on the edge work
// in Argo CD v3.2 with only each Application's repoURL changed, without a
// Secret per chart. Argo CD copies a template's type, enableOCI and
// insecureOCIForceHttp into any repository whose URL starts with the
// template's url and that has no credentials of its own
// (util/db enrichCredsToRepo, RepoCreds.CopyCredentialsFrom); see
// docs/charts.md.
//
//   - type helm at <httpBase>/helm/: the edge's Helm repositories (index.yaml
//     and .tgz), so `helm dependency build` lists them too;
//   - type helm, enableOCI "true" at <registry> (no scheme): Helm OCI
//     charts (repoURL <registry>/<host>/<path>, chart <name>). Argo CD
//     only guesses OCI for a scheme-less URL that url.Parse reads without
//     a host, which an IP:port is not;
//   - type oci, insecureOCIForceHttp "true" at oci://<registry>: Argo CD
//     OCI sources (repoURL oci://…) from the plain-HTTP edge registry.
//
// httpBase is the edge's http listener as Argo CD reaches it
// ("http://ballast-edge.ballast.svc:8080"), registry the edge registry's
// host:port.
func ChartCredentialTemplates(ns, httpBase, registry string) []*corev1.Secret {
	mk := func(name string, data map[string]string) *corev1.Secret {
		m := meta(name, ns)
		m.Labels["argocd.argoproj.io/secret-type"] = "repo-creds"
		return &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: m, StringData: data}
	}
	return []*corev1.Secret{
		mk(HelmRepoCredsName, map[string]string{"type": "helm", "url": strings.TrimRight(httpBase, "/") + "/helm/"}),
		mk(HelmOCICredsName, map[string]string{"type": "helm", "url": registry, "enableOCI": "true"}),
		mk(OCISourceCredsName, map[string]string{"type": "oci", "url": "oci://" + registry, "insecureOCIForceHttp": "true"}),
	}
}

// secretName is the repository Secret's name for a repository id: a
// DNS-1123 label (a subdomain would do; a label also fits label values) of
// at most 63 characters.
func secretName(id string) string {
	return dnsLabel("ballast-repo-"+id, id, 63)
}

func (o *Options) verifyRBAC() []any {
	objs := []any{&rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(verifyName, o.ArgoCDNamespace),
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"argoproj.io"}, Resources: []string{"applications"}, Verbs: []string{"get"}}},
	}}
	namespaces := map[string]bool{}
	var subjects []rbacv1.Subject
	for _, a := range o.Apps {
		if namespaces[a.Namespace] {
			continue
		}
		namespaces[a.Namespace] = true
		objs = append(objs, &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(verifyName, a.Namespace)},
			o.tokenSecret(a.Namespace))
		subjects = append(subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: verifyName, Namespace: a.Namespace})
	}
	objs = append(objs, &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(verifyName, o.ArgoCDNamespace),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: verifyName},
		Subjects:   subjects,
	})
	return objs
}

// HookAnnotations are what Argo CD reads on the gate's Job.
var HookAnnotations = map[string]string{
	"argocd.argoproj.io/hook":               "PreSync",
	"argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
}

func (o *Options) verifyArgs(c *config.Config, a App, revisionArgs ...string) []string {
	args := []string{"verify", "--repo", a.RepoURL}
	args = append(args, revisionArgs...)
	return append(args, "--mirror", o.mirrorBase(c), "--registry", o.clusterRegistry(c), "--activate",
		"--api-token-file", hookTokenMount+"/token")
}

// tokenSecret is the API token Secret in namespace ns.
func (o *Options) tokenSecret(ns string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(apiTokenSecret, ns),
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"token": o.APIToken.Secret()},
	}
}

// tokenVolume mounts the API token Secret (Kubernetes' default file mode:
// the image's user, whoever it is, must read it).
func tokenVolume() corev1.Volume {
	return corev1.Volume{Name: "api-token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: apiTokenSecret}}}
}

func (o *Options) hookJob(c *config.Config, i int) *batchv1.Job {
	a := o.Apps[i]
	return o.job(o.hookNames[i], a, o.verifyArgs(c, a, "--argocd-app", a.Name, "--argocd-namespace", o.ArgoCDNamespace))
}

func (o *Options) job(name string, a App, args []string) *batchv1.Job {
	zero := int32(0)
	deadline := int64(300)
	m := meta(name, a.Namespace)
	m.Annotations = map[string]string{}
	for k, v := range HookAnnotations {
		m.Annotations[k] = v
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: m,
		Spec: batchv1.JobSpec{
			// A failed gate must fail the sync at once; Argo CD's retry
			// policy, not the Job, decides when to try again.
			BackoffLimit:          &zero,
			ActiveDeadlineSeconds: &deadline,
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					ServiceAccountName: verifyName,
					RestartPolicy:      corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:            "verify",
						Image:           o.Image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            args,
						VolumeMounts:    []corev1.VolumeMount{{Name: "api-token", MountPath: hookTokenMount, ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{tokenVolume()},
				},
			},
		},
	}
}

// application is an example Argo CD Application for app a, syncing from the
// mirror with unlimited retries so a blocked sync resumes by itself once the
// bundle is complete.
func (o *Options) application(c *config.Config, a App) (map[string]any, error) {
	u, err := MirrorURL(o.mirrorBase(c), a.RepoURL)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Application",
		"metadata":   map[string]any{"name": a.Name, "namespace": o.ArgoCDNamespace, "labels": commonLabels},
		"spec": map[string]any{
			"project": "default",
			"source":  map[string]any{"repoURL": u, "path": a.Path, "targetRevision": "HEAD"},
			"destination": map[string]any{
				"server":    "https://kubernetes.default.svc",
				"namespace": a.Namespace,
			},
			"syncPolicy": map[string]any{
				"automated": map[string]any{"prune": true, "selfHeal": true},
				"retry": map[string]any{
					// Without refresh Argo CD retries the blocked revision
					// forever and never sees a newer commit.
					"limit":   -1,
					"refresh": true,
					"backoff": map[string]any{"duration": "10s", "factor": 2, "maxDuration": "3m"},
				},
			},
		},
	}, nil
}

// helmHook is the gate as a Helm template for charts deployed by Argo CD,
// which pass the revision as a Helm parameter
// (helm.parameters: [{name: ballast.revision, value: $ARGOCD_APP_REVISION}]).
func (o *Options) helmHook(c *config.Config) string {
	var b strings.Builder
	b.WriteString(`{{- /*
ballast PreSync gate for Helm charts deployed by Argo CD. Copy into your
chart's templates/ and pass the revision from the Application:

  spec:
    source:
      helm:
        parameters:
          - name: ballast.revision
            value: $ARGOCD_APP_REVISION

Argo CD substitutes $ARGOCD_APP_REVISION in Helm parameters (not in values).
*/ -}}
{{- if .Values.ballast.revision }}
`)
	a := o.Apps[0]
	j := o.job(o.hookNames[0], a, o.verifyArgs(c, a, "--revision", "REVISION"))
	j.Namespace = ""
	raw, _ := yamlStream(j)
	s := strings.Replace(string(raw), "- REVISION", "- {{ .Values.ballast.revision | quote }}", 1)
	s = strings.Replace(s, "- "+a.RepoURL+"\n", "- {{ .Values.ballast.repo | default \""+a.RepoURL+"\" | quote }}\n", 1)
	s = strings.TrimPrefix(s, "---\n")
	b.WriteString(s)
	b.WriteString("{{- end }}\n")
	return b.String()
}

// yamlStream marshals objects as a YAML stream, dropping the fields that
// typed objects always carry but nobody wrote (creationTimestamp: null,
// empty status).
func yamlStream(objs ...any) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		clean(m)
		b, err = yaml.Marshal(m)
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// droppable are keys whose empty value typed objects write but which say
// nothing (emptyDir: {} is not among them: it means something).
var droppable = map[string]bool{"status": true, "metadata": true, "resources": true, "strategy": true}

func clean(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if k == "creationTimestamp" && x == nil || droppable[k] && isEmpty(x) {
				delete(t, k)
				continue
			}
			clean(x)
		}
	case []any:
		for _, x := range t {
			clean(x)
		}
	}
}

func isEmpty(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}
