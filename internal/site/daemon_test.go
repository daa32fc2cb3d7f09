package site_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// pushBundle pushes one image and the bundle index of sha, as CI does.
func pushBundle(t *testing.T, up *regserver.Server, repo, sha string) {
	t.Helper()
	pushBundleSized(t, up, repo, sha, 1, 32<<10)
}

// pushBundleSized is pushBundle with an image of layers random layers of
// layerSize bytes each.
func pushBundleSized(t *testing.T, up *regserver.Server, repo, sha string, layers int, layerSize int64) {
	t.Helper()
	img := testimage.Image(t, "linux/amd64", layers, layerSize)
	d, _ := img.Digest()
	size, _ := img.Size()
	mt, _ := img.MediaType()
	dst, _ := name.NewDigest(up.Repo(repo)+"@"+d.String(), name.Insecure)
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	r, _ := imageref.Parse("ghcr.io/org/app:stable")
	raw, desc, err := bundle.Build(bundle.Bundle{Revision: sha, Created: time.Now(),
		Images: []bundle.Image{{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: d}}}})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(up.Repo(repo)+":"+sha, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
}

// Issue 11 §3: the running daemon sees what an import into its registry
// changed. The daemon's passes come every hour here (interval and poll),
// so only the import itself can make sync look again.
func TestRunningDaemonSeesImport(t *testing.T) {
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	repo := git.CreateRepo(t, "fleet/apps")
	url := git.URL("fleet/apps")
	rev1 := repo.Commit("main", map[string]string{"a": "1"})
	pushBundle(t, up, "fleet/apps-bundles", rev1)
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Repositories: []config.Repository{{URL: url, Bundles: up.Repo("fleet/apps-bundles"), Track: []string{"refs/heads/main"},
			KeepRevisions: 1, PollInterval: config.Duration{Duration: time.Hour}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}},
	}
	d := edged.Start(t, cfg)
	state := func(sha string) string {
		for _, r := range d.Sync.Status().Repos {
			for _, rv := range r.Revisions {
				if rv.Revision == sha {
					return rv.State
				}
			}
		}
		return ""
	}
	waitState := func(sha, want string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second) // the daemon's own passes are an hour apart
		for state(sha) != want {
			if time.Now().After(deadline) {
				t.Fatalf("revision %s: state %q, want %q", sha, state(sha), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitState(rev1, syncer.StateComplete)

	// rev2 reaches the site on a drive only: the daemon never polls it.
	rev2 := repo.Commit("main", map[string]string{"a": "2"})
	pushBundle(t, up, "fleet/apps-bundles", rev2)
	file := filepath.Join(t.TempDir(), "update.tar")
	if _, err := sneakernet.Export(context.Background(), sneakernet.ExportOptions{
		Bundle: up.Repo("fleet/apps-bundles") + ":" + rev2, GitDir: repo.Dir, Output: file, Since: rev1,
		RemoteOptions: []registryclient.Option{anon},
	}); err != nil {
		t.Fatal(err)
	}
	creds, err := os.ReadFile(cfg.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(strings.TrimSpace(string(creds)), ":")
	bare := filepath.Join(cfg.DataDir, "git", strings.TrimPrefix(url, "http://")) // host:port/fleet/apps.git
	if _, err := sneakernet.Import(context.Background(), sneakernet.ImportOptions{
		File: file, Registry: d.Registry, GitDir: bare, RepoURL: url,
		RemoteOptions: []registryclient.Option{registryclient.WithInsecure(true), registryclient.WithAuth(&authn.Basic{Username: user, Password: pass})},
	}); err != nil {
		t.Fatal(err)
	}
	// The import's index write kicks a pass; the pass after the git load
	// (kicked the same way, or the kick folded into it) wants rev2.
	waitState(rev2, syncer.StateComplete)
}
