package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// pathFlagNames are flag names that take a file or directory wherever they
// appear. Every one of them must be a path flag (made absolute on parse):
// a new command that takes --output as a plain string fails here.
var pathFlagNames = map[string]bool{
	"config": true, "output": true, "oci-layout": true, "output-dir": true, "dir": true, "git": true,
	"git-dir": true, "k3s-config-dir": true, "credentials-file": true, "airgap-images": true,
}

func TestEveryFileFlagIsAPathFlag(t *testing.T) {
	root := newRootCmd(&env{stdout: io.Discard, stderr: io.Discard})
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if pathFlagNames[f.Name] && f.Shorthand != "o" { // -o is the output format
				seen++
				if f.Value.Type() != "path" {
					t.Errorf("%s --%s is a %s flag, not a path flag: a relative path would break", c.CommandPath(), f.Name, f.Value.Type())
				}
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if seen < 10 {
		t.Errorf("only %d file flags found: the walk is not seeing the commands", seen)
	}
}

// TestRelativePaths runs the commands with relative file and directory
// arguments, as the docs write them, from a working directory that is not
// where git or the temp files live.
func TestRelativePaths(t *testing.T) {
	f := newBundleFixture(t)
	to := f.reg.Repo("fleet/apps-bundles")
	dir := t.TempDir()
	t.Chdir(dir)
	gitRel, err := filepath.Rel(dir, f.repo)
	if err != nil || filepath.IsAbs(gitRel) {
		t.Fatalf("relative git path: %q %v", gitRel, err)
	}
	must := func(what string, args ...string) {
		t.Helper()
		if out, errOut, code := runCLI(t, args...); code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", what, code, out, errOut)
		}
	}
	exists := func(p string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s not written where asked: %v", p, err)
		}
	}
	must("bundle", "bundle", "--repo", f.repo, "--to", to, "--oci-layout", "layout", "--output", "bundle.tar")
	exists("layout/index.json")
	exists("bundle.tar")
	must("export", "export", "--bundle", to+":"+f.sha, "--git", gitRel, "--output", "update.tar")
	exists("update.tar")
	if err := os.MkdirAll("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	must("export into a subdirectory", "export", "--bundle", to+":"+f.sha, "--git", gitRel, "--output", "sub/../sub/update.tar")
	exists("sub/update.tar")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile("edge.yaml", []byte("dataDir: "+data+"\nrepositories:\n  - url: https://git.example.com/fleet/apps.git\n    bundles: registry.example.com/fleet/apps-bundles\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must("import", "import", "update.tar", "--config", "edge.yaml")
	exists("data/git/git.example.com/fleet/apps.git/HEAD")
	must("install", "install", "--config", "edge.yaml", "--output-dir", "out")
	exists("out/k3s/registries.yaml")
	out, _, _ := runCLI(t, "doctor", "--config", "edge.yaml", "--k3s-config-dir", "out/k3s")
	if !strings.Contains(out, "registries.yaml") || strings.Contains(out, "no such file") {
		t.Errorf("doctor with a relative --k3s-config-dir:\n%s", out)
	}
	// No stray temp files next to the git repository or anywhere else.
	if left, _ := filepath.Glob(filepath.Join(f.repo, ".ballast-export-*")); len(left) > 0 {
		t.Errorf("export left %v in the git repository", left)
	}
}

func TestAbsPath(t *testing.T) {
	wd, _ := os.Getwd()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"-", "-"},
		{"update.tar", filepath.Join(wd, "update.tar")},
		{"./a/../b", filepath.Join(wd, "b")},
		{"/abs/x", "/abs/x"},
	} {
		if got, err := absPath(tc.in); err != nil || got != tc.want {
			t.Errorf("absPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
