package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfg, []byte("dataDir: /d\nrepositories: [{url: 'https://github.com/fleet/apps.git'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCLI(t, "install", "--config", cfg)
	if code != 0 || !strings.Contains(out, "# ballast install: k3s/registries.yaml") || !strings.Contains(out, "kind: Deployment") {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	outDir := filepath.Join(dir, "out")
	if _, errOut, code := runCLI(t, "install", "--config", cfg, "--output-dir", outDir, "--app", "name=shop,repo=https://github.com/fleet/apps.git,path=apps/shop"); code != 0 {
		t.Fatalf("install --output-dir: exit %d: %s", code, errOut)
	}
	for _, f := range []string{"kubernetes/edge.yaml", "argocd/presync-hook.yaml", "argocd/presync-hook-helm.tpl", "k3s/registries.yaml", "containerd/certs.d/docker.io/hosts.toml"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	for f, want := range map[string]os.FileMode{"kubernetes/edge.yaml": 0o600, "argocd/verify-rbac.yaml": 0o600, "argocd/presync-hook.yaml": 0o644} {
		if fi, err := os.Stat(filepath.Join(outDir, f)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", f, fi.Mode(), err, want)
		}
	}
	// An existing token is reused, not rotated.
	tokFile := filepath.Join(dir, "api-token")
	tok := strings.Repeat("k", 48)
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code = runCLI(t, "install", "--config", cfg, "--api-token-file", tokFile)
	if code != 0 || strings.Count(out, "token: "+tok) != 2 {
		t.Fatalf("install --api-token-file: exit %d, token in %d Secrets, want 2", code, strings.Count(out, "token: "+tok))
	}
	for _, args := range [][]string{
		{"install"},
		{"install", "--config", cfg, "--api-token-file", filepath.Join(dir, "nope")},
		{"install", "--config", filepath.Join(dir, "nope.yaml")},
		{"install", "--config", cfg, "--app", "name=x"},
		{"install", "--config", cfg, "--app", "name=x,repo=https://other/x.git"},
		{"install", "--config", cfg, "--storage", "nfs"},
	} {
		if _, _, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
