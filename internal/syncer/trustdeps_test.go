package syncer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// TestUntrustedBundleNeedsNoGitDeps: the git dependencies an unsigned
// bundle index records (submodules, remote bases with their refs) must
// not reach the mirror: they would make it fetch repositories the
// signer never named and advertise a remote base's ref at a commit of
// the pusher's choosing, for signed revisions to render with.
func TestUntrustedBundleNeedsNoGitDeps(t *testing.T) {
	signer := newSigner(t)
	pub := filepath.Join(t.TempDir(), "cosign.pub")
	pemBytes, _ := signer.PublicKeyPEM()
	if err := os.WriteFile(pub, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSite(t, func(c *config.Config) {
		c.Trust = &config.Trust{PublicKeys: []string{pub}}
	})
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	sha := s.commit(map[string]string{"a": "1"})
	b := bundle.Bundle{Revision: sha, Created: time.Now(), GitDeps: []bundle.GitDep{{
		Kind: bundle.GitDepRemoteBase, URL: "https://git.example.com/org/base.git",
		Commit: "0123456789abcdef0123456789abcdef01234567", Ref: "v1.2", Path: "deploy"}}}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(s.up.Repo(s.bundles)+":"+sha, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.sync.Pass(ctx); !syncer.IsUntrusted(err) {
		t.Fatalf("unsigned bundle: err = %v, want untrusted", err)
	}
	if deps := s.mirror.GitDeps(); len(deps) != 0 {
		t.Fatalf("an unsigned bundle's git dependencies reached the mirror: %+v", deps)
	}
}
