package install

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/testutil/testkeys"
)

// TestConfigFilesCarried: every file the edge config names (relative to
// the config file, one of them named twice) reaches the daemon through
// the files Secret, and the in-cluster config, with the Secret laid out
// where the Deployment mounts it, loads: keys parse, credentials read.
func TestConfigFilesCarried(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	testkeys.WritePublicKey(t, testkeys.Signer(t), filepath.Join(dir, "keys", "cosign.pub"))
	write("secrets/user", []byte("robot\n"))
	write("secrets/pw", []byte("hunter22\n"))
	write("secrets/write", []byte("ci:w-secret\n"))
	raw := `dataDir: /srv/ballast
registry: {writeCredentialsFile: secrets/write}
repositories:
  - url: https://github.com/fleet/apps.git
    credentials: {usernameFile: secrets/user, passwordFile: secrets/pw}
upstreamRegistries:
  ghcr.io: {usernameFile: secrets/user, passwordFile: secrets/pw}
trust: {publicKeys: [keys/cosign.pub]}
`
	c, err := config.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(c, []byte(raw), Options{Image: "x:1", ConfigDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var edge map[string][]any
	for _, f := range files {
		if f.Path == "kubernetes/edge.yaml" {
			if !f.Sensitive {
				t.Error("kubernetes/edge.yaml holds credentials and is not marked sensitive")
			}
			edge = decodeStrict(t, "edge", f.Content)
		}
	}
	var secret *corev1.Secret
	for _, o := range edge["Secret"] {
		if s := o.(*corev1.Secret); s.Name == configFilesSecret {
			secret = s
		}
	}
	if secret == nil {
		t.Fatal("no files Secret")
	}
	if len(secret.Data) != 4 {
		t.Errorf("files Secret holds %d files, want 4 (a file named twice is carried once): %v", len(secret.Data), slices.Sorted(maps.Keys(secret.Data)))
	}
	dep := edge["Deployment"][0].(*appsv1.Deployment)
	var mountPath string
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == configFilesSecret {
				mountPath = m.MountPath
			}
		}
	}
	if mountPath == "" {
		t.Fatal("the Deployment does not mount the files Secret")
	}
	// Lay the Secret out as the kubelet would, under a temporary root.
	root := t.TempDir()
	for k, b := range secret.Data {
		p := filepath.Join(root, mountPath, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	cfgText := edge["ConfigMap"][0].(*corev1.ConfigMap).Data["edge.yaml"]
	in, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range in.FileFields() {
		if f.Name == "api.tokenFile" {
			continue
		}
		if !strings.HasPrefix(f.Value, mountPath+"/") {
			t.Errorf("in-cluster %s = %q, not under the mount %s", f.Name, f.Value, mountPath)
		}
	}
	cfgText = strings.ReplaceAll(cfgText, mountPath+"/", filepath.Join(root, mountPath)+"/")
	cfgText = strings.ReplaceAll(cfgText, containerData, filepath.Join(root, "data"))
	p := filepath.Join(root, "edge.yaml")
	if err := os.WriteFile(p, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(p)
	if err != nil {
		t.Fatalf("the in-cluster config does not load with the mounted files: %v", err)
	}
	if n := len(loaded.Trust.Keys()); n != 1 {
		t.Errorf("trust keys loaded: %d, want 1", n)
	}
	got := map[string]string{}
	for _, f := range loaded.FileFields() {
		if b, err := os.ReadFile(f.Value); err == nil {
			got[f.Name] = strings.TrimSpace(string(b))
		}
	}
	for name, want := range map[string]string{
		"registry.writeCredentialsFile":            "ci:w-secret",
		"repositories[0].credentials.usernameFile": "robot",
		"repositories[0].credentials.passwordFile": "hunter22",
		"upstreamRegistries[ghcr.io].usernameFile": "robot",
		"upstreamRegistries[ghcr.io].passwordFile": "hunter22",
	} {
		if got[name] != want {
			t.Errorf("%s reads %q in the cluster, want %q", name, got[name], want)
		}
	}
}

// TestConfigFilesRefused: a file the config names that install cannot
// carry is an error naming the field, never a daemon that fails at start.
func TestConfigFilesRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, maxConfigFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"dataDir: /d\nupstreamRegistries: {ghcr.io: {usernameFile: nope, passwordFile: nope}}", "upstreamRegistries[ghcr.io].usernameFile"},
		{"dataDir: /d\nregistry: {writeCredentialsFile: big}", "registry.writeCredentialsFile"},
		{"dataDir: /d\nregistry: {writeCredentialsFile: .}", "not a regular file"},
	} {
		c, err := config.Parse([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Render(c, []byte(tc.doc), Options{Image: "x:1", ConfigDir: dir})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%q) = %v, want an error naming %q", tc.doc, err, tc.want)
		}
	}
}
