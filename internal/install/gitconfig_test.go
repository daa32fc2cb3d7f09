package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// The repo-server's gitconfig sends every URL form git may meet (the
// repository, its submodules absolute or scp-like, remote bases) to the
// mirror, as git itself applies it.
func TestRepoServerGitConfig(t *testing.T) {
	gitserver.RequireGit(t)
	c := &config.Config{Repositories: []config.Repository{{URL: "https://git.example.com/fleet/apps.git"}}}
	text, err := RepoServerGitConfig(c, "http://ballast-edge.ballast.svc:8080", []string{"github.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "[filter \"lfs\"]") || !strings.Contains(text, "required = true") {
		t.Errorf("no git-lfs filters in the repo-server gitconfig:\n%s", text)
	}
	p := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	const mb = "http://ballast-edge.ballast.svc:8080/git/"
	for in, want := range map[string]string{
		"https://git.example.com/fleet/apps.git": mb + "git.example.com/fleet/apps.git",
		"git@git.example.com:fleet/lib.git":      mb + "git.example.com/fleet/lib.git",
		"git@github.com:org/base":                mb + "github.com/org/base",
		"ssh://git@github.com/org/base.git":      mb + "github.com/org/base.git",
		"https://other.example/org/x":            mb + "other.example/org/x",
		mb + "git.example.com/fleet/apps.git":    mb + "git.example.com/fleet/apps.git",
	} {
		cmd := exec.Command("git", "ls-remote", "--get-url", in)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+p, "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}
