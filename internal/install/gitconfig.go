package install

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/lfs"
)

const (
	// repoServerGitConfig names the ConfigMap with argocd-repo-server's
	// gitconfig (key "gitconfig").
	repoServerGitConfig = "ballast-repo-server-gitconfig"
	// repoServerGitDir is where the ConfigMap is mounted in
	// argocd-repo-server; GIT_CONFIG_GLOBAL names the file in it. Not
	// $HOME/.gitconfig: Argo CD runs git with HOME=/dev/null, and with its
	// own GIT_CONFIG_COUNT/KEY/VALUE (which would replace ours), but with
	// the rest of its environment, so GIT_CONFIG_GLOBAL reaches its git
	// fetches, its submodule updates and Kustomize's remote bases alike.
	repoServerGitDir = "/etc/ballast-git"
)

// RepoServerGitConfig returns the gitconfig that sends every git URL
// argocd-repo-server may be given (its repositories, their submodules in
// any URL form, remote Kustomize bases) to the mirror at mirrorBase
// (gitdeps.Rules). The scp-like form is rewritten for the hosts of the
// configured repositories and extraHosts. It also holds git-lfs's filters
// (lfs.RepoServerGitConfig): GIT_CONFIG_GLOBAL replaces the image's global
// config, and without them Argo CD checks LFS files out as pointer text.
func RepoServerGitConfig(c *config.Config, mirrorBase string, extraHosts []string) (string, error) {
	var urls []string
	for _, r := range c.Repositories {
		urls = append(urls, r.URL)
	}
	rules, err := gitdeps.Rules(mirrorBase, append(gitdeps.Hosts(urls...), extraHosts...))
	if err != nil {
		return "", err
	}
	return gitdeps.GitConfig(rules) + lfs.RepoServerGitConfig, nil
}

// repoServerGit returns the ConfigMap with the repo-server's gitconfig and
// a strategic merge patch of the argocd-repo-server Deployment that mounts
// it at repoServerGitDir and points GIT_CONFIG_GLOBAL at it (apply with `kubectl -n argocd patch deployment
// argocd-repo-server --patch-file argocd/repo-server-patch.yaml`).
func (o *Options) repoServerGit(c *config.Config) (cm any, patch any, err error) {
	text, err := RepoServerGitConfig(c, o.mirrorBase(c), o.GitHosts)
	if err != nil {
		return nil, nil, fmt.Errorf("repo-server gitconfig: %w", err)
	}
	m := meta(repoServerGitConfig, o.ArgoCDNamespace)
	cmap := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: m,
		Data: map[string]string{"gitconfig": text}}
	// A plain map, not an apps/v1 Deployment: a typed one would carry
	// "selector: null", which a strategic merge patch applies as a delete.
	dep := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "argocd-repo-server", "namespace": o.ArgoCDNamespace},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"volumes": []any{map[string]any{"name": repoServerGitConfig, "configMap": map[string]any{"name": repoServerGitConfig}}},
			"containers": []any{map[string]any{"name": "argocd-repo-server",
				"env": []any{map[string]any{"name": "GIT_CONFIG_GLOBAL", "value": repoServerGitDir + "/gitconfig"}},
				"volumeMounts": []any{map[string]any{
					// The directory, not a subPath: a subPath mount never
					// sees the ConfigMap change.
					"name": repoServerGitConfig, "mountPath": repoServerGitDir, "readOnly": true}}}},
		}}},
	}
	return cmap, dep, nil
}
