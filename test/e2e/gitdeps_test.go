package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

func deploymentYAML(name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers:
      - {name: web, image: %q}
`, name, name, name, image)
}

// TestArgoCDGitDeps: an app repository whose kustomization includes two
// submodules (a relative URL on the same host, an absolute URL without
// ".git" on another) and a remote base in another upstream repository,
// pinned by tag. CI bundles it (the submodules' and the base's images
// included); the edge mirrors the submodules and the base; with every
// upstream stopped, Argo CD — its git pointed at the mirror by the
// gitconfig `ballast install` generates — renders and syncs all three.
func TestArgoCDGitDeps(t *testing.T) {
	s := newStack(t, false)
	if _, err := os.Stat(s.deps.kustomize); err != nil {
		t.Fatalf("%v: build it with test/e2e/deps/build.sh kustomize (make e2e-deps)", err)
	}
	// The repo-server's git reads the gitconfig install made, through
	// GIT_CONFIG_GLOBAL (startArgoCD sets it as install's patch does).
	cm, err := decodeYAML(s.generated("repo-server-gitconfig.yaml"))
	if err != nil || len(cm) != 1 {
		t.Fatalf("repo-server-gitconfig.yaml: %v", err)
	}
	gitconfig, _, _ := unstructuredString(cm[0].Object, "data", "gitconfig")
	writeFile(t, filepath.Join(s.dir, "argocd-gitconfig"), gitconfig)
	patch := string(s.generated("repo-server-patch.yaml"))
	if !strings.Contains(patch, "GIT_CONFIG_GLOBAL") {
		t.Fatalf("install's repo-server patch does not set GIT_CONFIG_GLOBAL:\n%s", patch)
	}

	other := gitserver.New(t) // a second upstream host
	for _, img := range []string{"app/lib:1", "app/tool:1", "app/base:1"} {
		s.pushImage(img)
	}
	lib := s.git.CreateRepo(t, "fleet/lib")
	libSHA := lib.Commit("main", map[string]string{
		"deploy/kustomization.yaml": "resources: [app.yaml]\n",
		"deploy/app.yaml":           deploymentYAML("web-lib", s.reg.Addr+"/app/lib:1"),
	})
	tool := other.CreateRepo(t, "ext/tool")
	toolSHA := tool.Commit("main", map[string]string{
		"deploy/kustomization.yaml": "resources: [app.yaml]\n",
		"deploy/app.yaml":           deploymentYAML("web-tool", s.reg.Addr+"/app/tool:1"),
	})
	base := other.CreateRepo(t, "ext/base")
	v1 := base.Commit("main", map[string]string{
		"deploy/kustomization.yaml": "resources: [app.yaml]\n",
		"deploy/app.yaml":           deploymentYAML("web-base", s.reg.Addr+"/app/base:1"),
	})
	base.Git("tag", "-a", "-m", "v1", "v1", v1)
	base.Commit("main", map[string]string{"deploy/app.yaml": deploymentYAML("web-base", s.reg.Addr+"/app/base:2")})

	rev := s.repo.CommitChange("main", gitserver.Change{
		Files: map[string]string{
			".gitmodules": "[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n" +
				"[submodule \"tool\"]\n\tpath = vendor/tool\n\turl = " + strings.TrimSuffix(other.URL("ext/tool"), ".git") + "\n",
			"kustomization.yaml": "resources:\n- ballast-verify.yaml\n- vendor/lib/deploy\n- vendor/tool/deploy\n- " +
				other.URL("ext/base") + "//deploy?ref=v1\n",
			"ballast-verify.yaml": string(s.hookYAML),
		},
		Gitlinks: map[string]string{"vendor/lib": libSHA, "vendor/tool": toolSHA},
	})
	s.bundle(rev)
	waitFor(t, 120*time.Second, "edge has the revision, its bundle and its git dependencies", func() (bool, error) { return s.ready(rev) })

	// Every upstream stops: git (both hosts) and the registry link.
	s.git.Stop()
	other.Stop()
	s.reg.Stop()
	s.cluster.applyYAML(t, "argocd", s.appYAML)
	took := s.waitSynced(rev, 180*time.Second)
	t.Logf("TIMING: Application created → Succeeded from the edge alone in %.1fs", took.Seconds())
	for name, want := range map[string]string{
		"web-lib": s.reg.Addr + "/app/lib:1", "web-tool": s.reg.Addr + "/app/tool:1", "web-base": s.reg.Addr + "/app/base:1",
	} {
		d, err := s.cluster.kube.AppsV1().Deployments("default").Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("deployment %s: %v", name, err)
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != want {
			t.Errorf("deployment %s runs %s, want %s", name, got, want)
		}
	}
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}
