package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

func TestExportImportCommands(t *testing.T) {
	f := newBundleFixture(t)
	edge := regserver.Start(t, regserver.Options{Auth: true})
	to := f.reg.Repo("fleet/apps-bundles")
	if _, errOut, code := runCLI(t, "bundle", "--repo", f.repo, "--to", to); code != 0 {
		t.Fatalf("bundle: %d %s", code, errOut)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "site-update.tar")
	out, errOut, code := runCLI(t, "export", "--bundle", to+":"+f.sha, "--git", f.repo, "--output", file)
	if code != 0 || !strings.Contains(out, f.sha) {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	creds := filepath.Join(dir, "creds")
	os.WriteFile(creds, []byte(edge.User+":"+edge.Password+"\n"), 0o600)
	bare := t.TempDir()
	bundleGit(t, bare, "init", "-q", "--bare")

	// A truncated file: exit 2, nothing written.
	raw, _ := os.ReadFile(file)
	bad := filepath.Join(dir, "bad.tar")
	os.WriteFile(bad, raw[:len(raw)-2000], 0o644)
	if _, errOut, code := runCLI(t, "import", bad, "--registry", edge.Addr, "--credentials-file", creds, "--git-dir", bare); code != 2 || !strings.Contains(errOut, "truncated") {
		t.Fatalf("truncated import: exit %d %s", code, errOut)
	}
	// Wrong credentials: the operation fails (exit 1).
	os.WriteFile(filepath.Join(dir, "wrong"), []byte("ballast:nope\n"), 0o600)
	if _, errOut, code := runCLI(t, "import", file, "--registry", edge.Addr, "--credentials-file", filepath.Join(dir, "wrong"), "--git-dir", bare); code != 1 {
		t.Fatalf("wrong credentials: exit %d %s", code, errOut)
	}
	out, errOut, code = runCLI(t, "import", file, "--registry", edge.Addr, "--credentials-file", creds, "--git-dir", bare, "-o", "json")
	if code != 0 || !strings.Contains(out, `"bundleRepository": "ballast/bundles/git.example.com/fleet/apps"`) {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}
	if got := bundleGit(t, bare, "rev-parse", "refs/heads/main"); got != f.sha {
		t.Fatalf("edge git main %s, want %s", got, f.sha)
	}
	// Bad usage: exit 2.
	for _, args := range [][]string{
		{"export", "--bundle", "nope", "--output", file},
		{"export", "--bundle", to + ":" + f.sha},
		{"import"},
		{"import", file},
	} {
		if _, errOut, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
	}
}

// TestImportIntoEdgeDataDir loads an export file into an edge data dir that
// never had a link: the mirror's repository is created, the bundle is
// complete in the edge registry, tags included.
func TestImportIntoEdgeDataDir(t *testing.T) {
	f := newBundleFixture(t)
	to := f.reg.Repo("fleet/apps-bundles")
	if _, errOut, code := runCLI(t, "bundle", "--repo", f.repo, "--to", to); code != 0 {
		t.Fatalf("bundle: %d %s", code, errOut)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "site-update.tar")
	if _, errOut, code := runCLI(t, "export", "--bundle", to+":"+f.sha, "--git", f.repo, "--output", file); code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "edge.yaml")
	os.WriteFile(cfg, []byte("dataDir: "+data+"\nrepositories:\n  - url: https://git.example.com/fleet/apps.git\n    bundles: registry.example.com/fleet/apps-bundles\n"), 0o600)
	if out, errOut, code := runCLI(t, "import", file, "--config", cfg); code != 0 {
		t.Fatalf("import --config: %d %s %s", code, out, errOut)
	}
	if got := bundleGit(t, filepath.Join(data, "git/git.example.com/fleet/apps.git"), "rev-parse", "refs/heads/main"); got != f.sha {
		t.Fatalf("mirror main %s, want %s", got, f.sha)
	}
	reg, err := registry.New(context.Background(), registry.Options{DataDir: data, CredentialsFile: filepath.Join(data, "registry-credentials")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	p := registryclient.NewPresence("edge.invalid", registryclient.WithInsecure(true), registryclient.WithTransport(reg.Transport()))
	br, _ := imageref.BundleRepository("https://git.example.com/fleet/apps.git")
	rep, err := bundle.CheckComplete(context.Background(), p, bundle.Placement{BundleRepo: br, ImageRepo: func(r imageref.Ref) string { return r.EdgeRepository() }, CheckTags: true}, f.sha, nil)
	if err != nil || !rep.Complete() {
		t.Fatalf("bundle after import: %v %+v", err, rep)
	}
	// A missing file is bad input (exit 2) naming the file, even while
	// another process holds the data dir (the daemon would).
	held, err := site.Open(context.Background(), mustLoad(t, cfg), site.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "import", filepath.Join(dir, "nope.tar"), "--config", cfg)
	held.Close()
	if code != 2 || !strings.Contains(errOut, "nope.tar") {
		t.Fatalf("import of a missing file: exit %d %s", code, errOut)
	}
	// Several repositories and no --repo-url: bad usage.
	os.WriteFile(cfg, []byte("dataDir: "+data+"\nrepositories:\n  - url: https://git.example.com/fleet/apps.git\n  - url: https://git.example.com/fleet/other.git\n"), 0o600)
	if _, _, code := runCLI(t, "import", file, "--config", cfg); code != 2 {
		t.Fatalf("ambiguous import: exit %d", code)
	}
}

func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
