package syncer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// pushRefBundle pushes a bundle index of revision sha without images
// that records remote base url at commit under ref.
func pushRefBundle(t *testing.T, s *site, sha, url, ref, commit string, created time.Time) (*bundle.Bundle, v1.Descriptor, []byte) {
	t.Helper()
	b := bundle.Bundle{Revision: sha, Created: created, GitDeps: []bundle.GitDep{{
		Kind: bundle.GitDepRemoteBase, URL: url, Commit: commit, Ref: ref, Path: "deploy"}}}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(s.up.Repo(s.bundles)+":"+sha, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
	parsed, err := bundle.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return parsed, desc, raw
}

// TestImportDoesNotClaimForUntrustedBundles: an import lands by sync's
// claim rules, which visit the complete revisions already on site; one
// whose bundle the trust policy refuses (landed before signatures were
// required) must not point its remote bases' moving refs (nor its tags),
// as a pass would not.
func TestImportDoesNotClaimForUntrustedBundles(t *testing.T) {
	const x = "1111111111111111111111111111111111111111" // the unsigned bundle's
	const y = "2222222222222222222222222222222222222222" // pointed by an owner
	const z = "3333333333333333333333333333333333333333" // the signed import's
	s := newSite(t, nil)
	s.git.CreateRepo(t, "org/base")
	baseURL := s.git.URL("org/base")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rev0 := s.commit(map[string]string{"a": "0"})
	rev1 := s.commit(map[string]string{"a": "1"})
	pushRefBundle(t, s, rev1, baseURL, "v1.2", x, time.Now())
	if res := s.pass(); !res.Done() || res.Complete != 1 {
		t.Fatalf("pass without trust: %+v", res)
	}
	recorded := func() string {
		t.Helper()
		dr, _ := s.mirror.ResolveDepRef(ctx, baseURL, "v1.2")
		return dr.Recorded
	}
	if got := recorded(); got != x {
		t.Fatalf("ref recorded at %q after the first pass, want %s", got, x)
	}
	if _, err := s.mirror.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: y, Ref: "v1.2"}}); err != nil {
		t.Fatal(err)
	}

	// Signatures required from now on.
	signer := newSigner(t)
	pub := filepath.Join(t.TempDir(), "cosign.pub")
	pemBytes, _ := signer.PublicKeyPEM()
	if err := os.WriteFile(pub, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	s.cfg.Trust = &config.Trust{PublicKeys: []string{pub}}
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	s.restart()

	// A signed bundle of an older revision, imported.
	b0, d0, raw0 := pushRefBundle(t, s, rev0, baseURL, "v1.2", z, time.Now().Add(-time.Hour))
	pushSignature(t, s.up.Repo(s.bundles), signer, d0)
	src, err := registryclient.New(s.up.Repo(s.bundles), registryclient.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	br, err := imageref.BundleRepository(s.cfg.Repositories[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.sync.LandImport(ctx, s.cfg.Repositories[0].URL, syncer.Landing{Src: src, BundleRepo: br, Bundle: b0, Root: d0, Raw: raw0}); err != nil {
		t.Fatalf("import: %v", err)
	}
	if got := recorded(); got != z {
		t.Fatalf("ref recorded at %s after the import, want the signed import's %s (%s is the refused bundle's)", got, z, x)
	}
}

// TestActivateRefusesUntrustedBundle: an activation is a write like the
// tags and refs a pass moves: a complete revision whose bundle the trust
// policy refuses (landed before signatures were required) is not
// activated, and its remote bases' moving refs stay where they are.
func TestActivateRefusesUntrustedBundle(t *testing.T) {
	const x = "1111111111111111111111111111111111111111" // the unsigned bundle's
	const y = "2222222222222222222222222222222222222222" // pointed by an owner
	s := newSite(t, nil)
	s.git.CreateRepo(t, "org/base")
	baseURL := s.git.URL("org/base")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rev1 := s.commit(map[string]string{"a": "1"})
	pushRefBundle(t, s, rev1, baseURL, "v1.2", x, time.Now())
	if res := s.pass(); !res.Done() || res.Complete != 1 {
		t.Fatalf("pass without trust: %+v", res)
	}
	if _, err := s.mirror.PointGitDepRefs(ctx, []gitmirror.Dep{{URL: baseURL, Commit: y, Ref: "v1.2"}}); err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	pub := filepath.Join(t.TempDir(), "cosign.pub")
	pemBytes, _ := signer.PublicKeyPEM()
	if err := os.WriteFile(pub, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	s.cfg.Trust = &config.Trust{PublicKeys: []string{pub}}
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	s.restart()
	store, err := syncer.OpenDeployed(s.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.sync.Activate(ctx, s.cfg.Repositories[0].URL, rev1, store); !syncer.IsUntrusted(err) {
		t.Fatalf("activating an untrusted revision: err = %v, want untrusted", err)
	}
	if dr, _ := s.mirror.ResolveDepRef(ctx, baseURL, "v1.2"); dr.Recorded != y {
		t.Fatalf("ref recorded at %s after the refused activation, want %s", dr.Recorded, y)
	}
	if cur := store.Current(s.repoID); cur == rev1 {
		t.Fatal("the untrusted revision was recorded as deployed")
	}
}
