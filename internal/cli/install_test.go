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
	for _, args := range [][]string{
		{"install"},
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
