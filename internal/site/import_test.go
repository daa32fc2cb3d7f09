package site_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

var anon = registryclient.WithKeychain(authn.NewMultiKeychain())

const repoURL = "https://git.example.com/fleet/apps.git"

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// cloud is CI's side: a checkout and an upstream registry with bundles.
type cloud struct {
	t    *testing.T
	up   *regserver.Server
	repo string
}

// release points src/web:1 at a new image, commits, bundles the commit and
// exports it (bundle + the branches as they are now) to a file.
func (c *cloud) release() (sha, file string) {
	c.t.Helper()
	idx := testimage.Index(c.t, []string{"linux/amd64"}, 1, 32<<10)
	ref, _ := name.ParseReference(c.up.Repo("src/web:1"), name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		c.t.Fatal(err)
	}
	git(c.t, c.repo, "commit", "-q", "--allow-empty", "-m", "rev")
	// Bundles made a second apart, as CI makes them.
	time.Sleep(1100 * time.Millisecond)
	res, err := release.Run(context.Background(), release.Options{
		RepoDir: c.repo, Revision: "HEAD", To: c.up.Repo("fleet/apps-bundles"),
		Config: &release.Config{ExtraImages: []string{c.up.Repo("src/web:1")}}, RemoteOptions: []registryclient.Option{anon},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	file = filepath.Join(c.t.TempDir(), "update.tar")
	if _, err := sneakernet.Export(context.Background(), sneakernet.ExportOptions{
		Bundle: c.up.Repo("fleet/apps-bundles") + ":" + res.Revision, GitDir: c.repo, Output: file,
		RemoteOptions: []registryclient.Option{anon},
	}); err != nil {
		c.t.Fatal(err)
	}
	return res.Revision, file
}

func openSite(t *testing.T, up *regserver.Server) *site.Site {
	t.Helper()
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{{URL: repoURL, Bundles: up.Repo("fleet/apps-bundles"), Track: []string{"refs/heads/main"},
			KeepRevisions: 0, PollInterval: config.Duration{Duration: time.Hour}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}},
	}
	s, err := site.Open(context.Background(), cfg, site.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mainTip(t *testing.T, s *site.Site) string {
	t.Helper()
	tips, err := s.Mirror.RefTips(context.Background(), repoURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tips {
		if r.Name == "refs/heads/main" {
			return r.Object
		}
	}
	return ""
}

// Issue 11 §3: an older export on an offline site moves no branch and no
// image tag backwards (unless --force, which keeps the old tip), and a
// later pass with retention deletes nothing deployed or newer. Real parts:
// Debian's docker-registry upstream, the embedded edge registry, git, the
// real export and import paths.
func TestImportOfOlderExportMovesNothingBack(t *testing.T) {
	gitserver.RequireGit(t)
	c := &cloud{t: t, up: regserver.Start(t, regserver.Options{}), repo: t.TempDir()}
	git(t, c.repo, "init", "-q", "-b", "main")
	git(t, c.repo, "remote", "add", "origin", repoURL)
	rev1, file1 := c.release()
	rev2, file2 := c.release()

	s := openSite(t, c.up)
	ctx := context.Background()
	id, _ := imageref.RepoID(repoURL)
	if _, err := s.Import(ctx, sneakernet.ImportOptions{File: file2}); err != nil {
		t.Fatal(err)
	}
	if got := mainTip(t, s); got != rev2 {
		t.Fatalf("main after importing rev2: %s", got)
	}
	if rep, err := s.Sync.Activate(ctx, repoURL, rev2, s.Deployed); err != nil || !rep.Complete() {
		t.Fatalf("activate rev2: %v %+v", err, rep)
	}

	// The older file: its bundle lands, but main and the image tag stay.
	res, err := s.Import(ctx, sneakernet.ImportOptions{File: file1})
	if err != nil {
		t.Fatal(err)
	}
	if got := mainTip(t, s); got != rev2 {
		t.Fatalf("import of an older export moved main back to %s", got)
	}
	if res.GitRefs == nil || len(res.GitRefs.Refused) != 1 || res.GitRefs.Refused[0].Name != "refs/heads/main" {
		t.Fatalf("refused refs: %+v", res.GitRefs)
	}
	if rep, _ := s.Sync.Check(ctx, repoURL, rev2); !rep.Complete() {
		t.Fatalf("deployed rev2 lost its tag to an older import: %v", rep.Missing)
	}
	if rep, _ := s.Sync.Check(ctx, repoURL, rev1); rep.Complete() || len(rep.Missing) != 1 || rep.Missing[0].What != "tag" {
		t.Fatalf("rev1 after import: want its bundle in, its tag not moved: %+v", rep)
	}

	// A pass with retention (keepRevisions 0): rev2 (deployed, the tip)
	// stays complete; only the older, undeployed rev1 may go.
	if _, err := s.Sync.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, _ := s.Sync.Check(ctx, repoURL, rev2); !rep.Complete() {
		t.Fatalf("rev2 after a pass: %v", rep.Missing)
	}

	// --force moves main back and keeps the old tip.
	if _, err := s.Import(ctx, sneakernet.ImportOptions{File: file1, Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := mainTip(t, s); got != rev1 {
		t.Fatalf("main after a forced import of rev1: %s", got)
	}
	bare := filepath.Join(s.Layout.Git(), "git.example.com/fleet/apps.git")
	if got := git(t, bare, "for-each-ref", "--format=%(refname)", "refs/ballast/keep/"); got != "refs/ballast/keep/"+rev2 {
		t.Fatalf("keep refs after a forced import: %q", got)
	}
	if !s.Deployed.IsDeployed(id, rev2) {
		t.Fatal("deployed record lost")
	}
}
