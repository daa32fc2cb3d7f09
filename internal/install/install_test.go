package install

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/BurntSushi/toml"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
)

const edgeConfig = `
dataDir: /srv/ballast
listen: {http: ":8080", registry: ":5000"}
repositories:
  - url: https://github.com/fleet/apps.git
    bundles: registry.example.com/fleet/apps-bundles
  - url: http://git.example.com:3000/ops/infra.git
upstreamRegistries:
  127.0.0.1:5001: {insecure: true}
`

func render(t *testing.T, o Options) map[string][]byte {
	t.Helper()
	c, err := config.Parse([]byte(edgeConfig))
	if err != nil {
		t.Fatal(err)
	}
	if o.Image == "" {
		o.Image = "ghcr.io/ballast-dev/ballast:v0.1.0"
	}
	files, err := Render(c, []byte(edgeConfig), o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		out[f.Path] = f.Content
	}
	return out
}

// decodeStrict decodes every document of a YAML stream into its k8s.io/api
// type, treating unknown fields as errors, and returns them by kind.
func decodeStrict(t *testing.T, name string, b []byte) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for i, doc := range splitDocs(b) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s doc %d: %v", name, i, err)
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			obj = &corev1.Namespace{}
		case "v1/ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1/Secret":
			obj = &corev1.Secret{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "v1/PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "batch/v1/Job":
			obj = &batchv1.Job{}
		case "rbac.authorization.k8s.io/v1/Role":
			obj = &rbacv1.Role{}
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			obj = &rbacv1.RoleBinding{}
		case "argoproj.io/v1alpha1/Application":
			obj = &application{}
		default:
			t.Fatalf("%s doc %d: unexpected %s %s", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s doc %d (%s): strict decode: %v\n%s", name, i, tm.Kind, err, doc)
		}
		out[tm.Kind] = append(out[tm.Kind], obj)
	}
	return out
}

// docSep is a YAML document separator: "---" alone on its line, never a
// value that merely ends in "---".
var docSep = regexp.MustCompile(`(?m)^---\n`)

// splitDocs splits a YAML stream into its documents.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range docSep.Split(string(b), -1) {
		out = append(out, []byte(d))
	}
	return out
}

// application is the subset of Argo CD's Application that install writes;
// strict decoding into it catches misspelled fields.
type application struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			Path           string `json:"path"`
			TargetRevision string `json:"targetRevision"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy struct {
			Automated struct {
				Prune    bool `json:"prune"`
				SelfHeal bool `json:"selfHeal"`
			} `json:"automated"`
			Retry struct {
				Limit   int64 `json:"limit"`
				Refresh bool  `json:"refresh"`
				Backoff struct {
					Duration    string `json:"duration"`
					Factor      int64  `json:"factor"`
					MaxDuration string `json:"maxDuration"`
				} `json:"backoff"`
			} `json:"retry"`
		} `json:"syncPolicy"`
	} `json:"spec"`
}

func TestRenderDecodesStrictly(t *testing.T) {
	for _, storage := range []string{"hostPath", "pvc"} {
		t.Run(storage, func(t *testing.T) {
			files := render(t, Options{Storage: storage})
			edge := decodeStrict(t, "edge", files["kubernetes/edge.yaml"])
			dep := edge["Deployment"][0].(*appsv1.Deployment)
			if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *dep.Spec.Replicas != 1 || !dep.Spec.Template.Spec.HostNetwork {
				t.Errorf("deployment: %+v", dep.Spec)
			}
			if got := dep.Spec.Template.Spec.Containers[0].Image; got != "ghcr.io/ballast-dev/ballast:v0.1.0" {
				t.Errorf("image %q", got)
			}
			vol := dep.Spec.Template.Spec.Volumes[0]
			if (storage == "pvc") != (vol.PersistentVolumeClaim != nil) || (storage == "pvc") != (len(edge["PersistentVolumeClaim"]) == 1) {
				t.Errorf("volume %+v for storage %s", vol, storage)
			}
			cm := edge["ConfigMap"][0].(*corev1.ConfigMap)
			c, err := config.Parse([]byte(cm.Data["edge.yaml"]))
			if err != nil || c.DataDir != containerData || len(c.Repositories) != 2 {
				t.Errorf("configmap edge.yaml does not parse as the config: %v %+v", err, c)
			}
			if len(edge["Service"]) != 2 || len(edge["Namespace"]) != 1 || len(edge["ServiceAccount"]) != 1 {
				t.Errorf("objects: %v", keys(edge))
			}
		})
	}
}

func keys(m map[string][]any) []string {
	var k []string
	for n, v := range m {
		k = append(k, fmt.Sprintf("%s×%d", n, len(v)))
	}
	return k
}

func TestArgoCDObjects(t *testing.T) {
	files := render(t, Options{Apps: []App{{Name: "guestbook", Namespace: "shop", RepoURL: "https://github.com/fleet/apps.git", Path: "apps/guestbook"}}})
	secrets := decodeStrict(t, "repositories", files["argocd/repositories.yaml"])["Secret"]
	if len(secrets) != 2+3 {
		t.Fatalf("want a repository Secret per repo and 3 credential templates, got %d", len(secrets))
	}
	for i, want := range []map[string]string{
		{"type": "helm", "url": "http://ballast-edge.ballast.svc:8080/helm/"},
		{"type": "helm", "url": "ballast-edge-registry.ballast.svc:5000", "enableOCI": "true"},
		{"type": "oci", "url": "oci://ballast-edge-registry.ballast.svc:5000", "insecureOCIForceHttp": "true"},
	} {
		s := secrets[2+i].(*corev1.Secret)
		if s.Labels["argocd.argoproj.io/secret-type"] != "repo-creds" || s.Namespace != "argocd" || fmt.Sprint(s.StringData) != fmt.Sprint(want) {
			t.Errorf("credential template %d: %s %v %v, want repo-creds %v", i, s.Name, s.Labels, s.StringData, want)
		}
	}
	s := secrets[0].(*corev1.Secret)
	if s.Labels["argocd.argoproj.io/secret-type"] != "repository" || s.Namespace != "argocd" ||
		s.StringData["url"] != "http://ballast-edge.ballast.svc:8080/git/github.com/fleet/apps.git" || s.StringData["type"] != "git" {
		t.Errorf("secret %+v", s)
	}
	if u := secrets[1].(*corev1.Secret).StringData["url"]; u != "http://ballast-edge.ballast.svc:8080/git/git.example.com:3000/ops/infra.git" {
		t.Errorf("host:port repo URL %q", u)
	}

	job := decodeStrict(t, "hook", files["argocd/presync-hook.yaml"])["Job"][0].(*batchv1.Job)
	for k, v := range HookAnnotations {
		if job.Annotations[k] != v {
			t.Errorf("hook annotation %s = %q, want %q", k, job.Annotations[k], v)
		}
	}
	if *job.Spec.BackoffLimit != 0 || job.Namespace != "shop" || job.Spec.Template.Spec.ServiceAccountName != "ballast-verify" {
		t.Errorf("job %+v", job)
	}
	args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"verify", "--repo https://github.com/fleet/apps.git", "--argocd-app guestbook", "--argocd-namespace argocd",
		"--mirror http://ballast-edge.ballast.svc:8080", "--registry ballast-edge-registry.ballast.svc:5000", "--activate"} {
		if !strings.Contains(args, want) {
			t.Errorf("hook args %q lack %q", args, want)
		}
	}

	rbac := decodeStrict(t, "rbac", files["argocd/verify-rbac.yaml"])
	role := rbac["Role"][0].(*rbacv1.Role)
	if role.Namespace != "argocd" || role.Rules[0].Resources[0] != "applications" || strings.Join(role.Rules[0].Verbs, ",") != "get" {
		t.Errorf("role %+v", role)
	}
	rb := rbac["RoleBinding"][0].(*rbacv1.RoleBinding)
	if rb.Subjects[0].Namespace != "shop" || rb.Subjects[0].Name != "ballast-verify" {
		t.Errorf("rolebinding %+v", rb)
	}

	app := decodeStrict(t, "app", files["argocd/application-example.yaml"])["Application"][0].(*application)
	if app.Spec.SyncPolicy.Retry.Limit != -1 || !app.Spec.SyncPolicy.Retry.Refresh || app.Spec.Source.Path != "apps/guestbook" ||
		!strings.HasPrefix(app.Spec.Source.RepoURL, "http://ballast-edge.ballast.svc:8080/git/") {
		t.Errorf("application %+v", app.Spec)
	}
}

func TestHelmHookTemplate(t *testing.T) {
	tpl := string(render(t, Options{})["argocd/presync-hook-helm.tpl"])
	for _, want := range []string{"{{ .Values.ballast.revision | quote }}", "argocd.argoproj.io/hook: PreSync", "$ARGOCD_APP_REVISION", "{{- end }}"} {
		if !strings.Contains(tpl, want) {
			t.Errorf("helm hook lacks %q:\n%s", want, tpl)
		}
	}
}

func TestNodeFiles(t *testing.T) {
	files := render(t, Options{})
	var reg struct {
		Mirrors map[string]struct {
			Endpoint []string `json:"endpoint"`
		} `json:"mirrors"`
	}
	if err := yaml.UnmarshalStrict(files["k3s/registries.yaml"], &reg); err != nil {
		t.Fatal(err)
	}
	if ep := reg.Mirrors["*"].Endpoint; len(ep) != 1 || ep[0] != "http://127.0.0.1:5000" {
		t.Errorf("registries.yaml mirrors: %+v", reg)
	}
	var k3s map[string]any
	if err := yaml.Unmarshal(files["k3s/config.yaml"], &k3s); err != nil || k3s["data-dir"] != "/var/lib/rancher/k3s" {
		t.Errorf("k3s config: %v %v", k3s, err)
	}
	for reg, server := range map[string]string{"docker.io": "https://registry-1.docker.io", "ghcr.io": "https://ghcr.io", "127.0.0.1:5001": "https://127.0.0.1:5001"} {
		var h struct {
			Server string
			Host   map[string]struct{ Capabilities []string }
		}
		b, ok := files["containerd/certs.d/"+reg+"/hosts.toml"]
		if !ok {
			t.Errorf("no hosts.toml for %s", reg)
			continue
		}
		if _, err := toml.Decode(string(b), &h); err != nil {
			t.Fatalf("%s hosts.toml: %v", reg, err)
		}
		if h.Server != server || strings.Join(h.Host["http://127.0.0.1:5000"].Capabilities, ",") != "pull,resolve" {
			t.Errorf("%s hosts.toml: %+v", reg, h)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	c, _ := config.Parse([]byte(edgeConfig))
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "image: required"},
		{Options{Image: "Bad Image"}, "image"},
		{Options{Image: "x:1", Storage: "nfs"}, "storage"},
		{Options{Image: "x:1", StorageSize: "lots"}, "storage size"},
		{Options{Image: "x:1", Apps: []App{{Name: "a", Namespace: "n", RepoURL: "https://elsewhere/x.git"}}}, "not in the edge config"},
		{Options{Image: "x:1", Apps: []App{{Name: "a"}}}, "required"},
	} {
		if _, err := Render(c, []byte(edgeConfig), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%+v) = %v, want error containing %q", tc.o, err, tc.want)
		}
	}
}

// TestAPITokenProvisioned: the daemon and every hook Job get the same API
// token from Secrets (decoded strictly): the daemon's config names the
// mounted file, the hook mounts it and passes --api-token-file, and the
// files holding it are marked sensitive. The Deployment's GOMEMLIMIT sits
// below its memory limit.
func TestAPITokenProvisioned(t *testing.T) {
	tok, err := apiauth.Parse([]byte(strings.Repeat("t", 40)))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := config.Parse([]byte(edgeConfig))
	o := Options{Image: "x:1", APIToken: tok, Apps: []App{
		{Name: "a", Namespace: "shop", RepoURL: "https://github.com/fleet/apps.git"},
		{Name: "b", Namespace: "infra", RepoURL: "http://git.example.com:3000/ops/infra.git"},
	}}
	rendered, err := Render(c, []byte(edgeConfig), o)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range rendered {
		files[f.Path] = f.Content
		holds := bytes.Contains(f.Content, []byte(tok.Secret()))
		if holds != f.Sensitive {
			t.Errorf("%s: holds the token %v, marked sensitive %v", f.Path, holds, f.Sensitive)
		}
	}
	secretIn := func(objs []any, ns string) *corev1.Secret {
		for _, o := range objs {
			if s := o.(*corev1.Secret); s.Name == apiTokenSecret && s.Namespace == ns {
				return s
			}
		}
		return nil
	}
	edge := decodeStrict(t, "edge", files["kubernetes/edge.yaml"])
	if s := secretIn(edge["Secret"], "ballast"); s == nil || s.StringData["token"] != tok.Secret() {
		t.Fatalf("daemon token Secret: %+v", s)
	}
	dep := edge["Deployment"][0].(*appsv1.Deployment)
	ctr := dep.Spec.Template.Spec.Containers[0]
	cm := edge["ConfigMap"][0].(*corev1.ConfigMap)
	cfg, err := config.Parse([]byte(cm.Data["edge.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if !mounts(t, dep.Spec.Template.Spec, ctr, cfg.APITokenFile()) {
		t.Errorf("daemon config reads the token from %s, which the Deployment does not mount from %s", cfg.APITokenFile(), apiTokenSecret)
	}
	var gml string
	for _, e := range ctr.Env {
		if e.Name == "GOMEMLIMIT" {
			gml = e.Value
		}
	}
	limit := ctr.Resources.Limits.Memory().Value()
	mib, err := strconv.ParseInt(strings.TrimSuffix(gml, "MiB"), 10, 64)
	if err != nil || !strings.HasSuffix(gml, "MiB") || mib<<20 >= limit || mib<<20 < limit*3/4 {
		t.Errorf("GOMEMLIMIT %q with a memory limit of %d bytes: want MiB between 3/4 of the limit and the limit", gml, limit)
	}

	rbac := decodeStrict(t, "rbac", files["argocd/verify-rbac.yaml"])
	for _, job := range decodeStrict(t, "hook", files["argocd/presync-hook.yaml"])["Job"] {
		j := job.(*batchv1.Job)
		if s := secretIn(rbac["Secret"], j.Namespace); s == nil || s.StringData["token"] != tok.Secret() {
			t.Errorf("no token Secret in the hook's namespace %s", j.Namespace)
		}
		spec := j.Spec.Template.Spec
		args := spec.Containers[0].Args
		i := slices.Index(args, "--api-token-file")
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("hook %s/%s does not pass --api-token-file: %q", j.Namespace, j.Name, args)
		}
		if !mounts(t, spec, spec.Containers[0], args[i+1]) {
			t.Errorf("hook %s passes %s, which it does not mount from %s", j.Namespace, args[i+1], apiTokenSecret)
		}
	}
	if tpl := string(files["argocd/presync-hook-helm.tpl"]); !strings.Contains(tpl, "secretName: "+apiTokenSecret) || !strings.Contains(tpl, "--api-token-file") {
		t.Errorf("helm hook does not mount the token:\n%s", tpl)
	}
}

// mounts reports whether file is key "token" of the API token Secret as
// mounted into ctr.
func mounts(t *testing.T, pod corev1.PodSpec, ctr corev1.Container, file string) bool {
	t.Helper()
	for _, m := range ctr.VolumeMounts {
		if path.Join(m.MountPath, "token") != file {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == apiTokenSecret {
				return true
			}
		}
	}
	return false
}
