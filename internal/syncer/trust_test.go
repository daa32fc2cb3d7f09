package syncer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/cosigncli"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/testkeys"
	"github.com/ballast-dev/ballast/internal/trust"
)

// revState is sync's state and error of revision sha.
func (s *site) revState(sha string) (string, string) {
	for _, r := range s.sync.Status().Repos {
		for _, rv := range r.Revisions {
			if rv.Revision == sha {
				return rv.State, rv.Error
			}
		}
	}
	return "", ""
}

// serveEdge serves the site's edge registry on a loopback port for
// outside clients (cosign) and returns its host:port.
func (s *site) serveEdge() string {
	s.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.reg.Serve(ctx, ln) }()
	s.t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestTrustBundleSignatures signs bundle indexes upstream with the real
// cosign CLI and checks that sync lands only those signed by a trusted
// key, for exactly their digest, and that `cosign verify --key` passes
// against the edge registry with the upstream stopped.
func TestTrustBundleSignatures(t *testing.T) {
	cli := cosigncli.Find(t)
	keyA, pubA := cli.KeyPair(t)
	keyB, _ := cli.KeyPair(t)
	s := newSite(t, func(c *config.Config) {
		c.Trust = &config.Trust{PublicKeys: []string{pubA}}
	})
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	// newSite's config skipped Parse's defaults: signatures are required
	// by default.
	if !s.cfg.Trust.SignaturesRequired() {
		t.Fatal("signatures not required by default")
	}
	ctx := context.Background()
	edge := s.serveEdge()
	bundleRef := func(d v1.Descriptor) string { return s.up.Repo(s.bundles) + "@" + d.Digest.String() }
	push := func(files map[string]string) (string, v1.Descriptor) {
		sha := s.commit(files)
		img := testimage.Image(t, "linux/amd64", 1, 4<<10)
		return sha, pushBundle(t, s.up, s.bundles, sha, map[string]artifact{s.up.Repo("src/app") + ":" + sha[:8]: img})
	}
	pass := func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := s.sync.Pass(pctx)
		return err
	}
	refused := func(sha, want string) {
		t.Helper()
		err := pass()
		if err == nil || !syncer.IsUntrusted(err) {
			t.Fatalf("pass err = %v, want an untrusted refusal", err)
		}
		st, reason := s.revState(sha)
		if st != syncer.StateUntrusted || !strings.Contains(reason, want) {
			t.Fatalf("state %q (%q), want %q with a reason containing %q", st, reason, syncer.StateUntrusted, want)
		}
		rep := s.check(sha)
		if rep.Bundle != nil || rep.Complete() {
			t.Fatalf("refused bundle %s is visible at the edge", sha[:8])
		}
		ok, err := s.sync.BundleComplete(ctx, s.cfg.Repositories[0].URL, sha)
		if err != nil || ok {
			t.Fatalf("BundleComplete = %v, %v; want false", ok, err)
		}
	}

	// Unsigned.
	sha, _ := push(map[string]string{"a": "1"})
	refused(sha, "is not signed")
	var terr *transport.Error
	if _, err := remote.Head(mustTag(t, s.edgeTag(edge, sha))); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Fatalf("image tag of a refused bundle: HEAD err = %v, want 404", err)
	}

	// Signed by a key the edge does not trust.
	sha, d := push(map[string]string{"a": "2"})
	if err := cli.Sign(ctx, keyB, bundleRef(d)); err != nil {
		t.Fatal(err)
	}
	refused(sha, "not signed by a trusted key")

	// A trusted signature of another digest, copied under this digest's tag.
	shaOK, dOK := push(map[string]string{"a": "3"})
	if err := cli.Sign(ctx, keyA, bundleRef(dOK)); err != nil {
		t.Fatal(err)
	}
	sha, d = push(map[string]string{"a": "4"})
	copyTag(t, s.up.Repo(s.bundles), trust.SignatureTag(dOK.Digest), trust.SignatureTag(d.Digest), nil)
	refused(sha, "signature is for another digest")

	// A trusted signature, tampered with.
	sha, d = push(map[string]string{"a": "5"})
	if err := cli.Sign(ctx, keyA, bundleRef(d)); err != nil {
		t.Fatal(err)
	}
	copyTag(t, s.up.Repo(s.bundles), trust.SignatureTag(d.Digest), trust.SignatureTag(d.Digest), func(raw []byte) []byte {
		i := bytes.Index(raw, []byte(trust.SignatureAnnotation+`":"`)) + len(trust.SignatureAnnotation) + 3
		sig, err := base64.StdEncoding.DecodeString(string(raw[i : i+bytes.IndexByte(raw[i:], '"')]))
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), sig...)
		bad[len(bad)-3] ^= 0x01
		return bytes.Replace(raw, []byte(base64.StdEncoding.EncodeToString(sig)), []byte(base64.StdEncoding.EncodeToString(bad)), 1)
	})
	refused(sha, "not signed by a trusted key")

	// Signed properly: it lands, with its signature beside the index.
	sha = shaOK
	s.repo.Commit("main", map[string]string{"a": "3b"}) // move on, then back
	s.cfg.Repositories[0].KeepRevisions = 10
	s.restart()
	if err := pass(); err != nil && !syncer.IsUntrusted(err) {
		t.Fatal(err)
	}
	if st, reason := s.revState(sha); st != syncer.StateComplete {
		t.Fatalf("signed revision: state %q (%s), want complete", st, reason)
	}
	if _, err := remote.Head(mustTag(t, s.edgeTag(edge, sha))); err != nil {
		t.Fatalf("image tag of the trusted bundle: %v", err)
	}
	br, _ := imageref.BundleRepository(s.cfg.Repositories[0].URL)
	s.up.Stop()
	out, err := cli.Verify(ctx, pubA, edge+"/"+br+"@"+dOK.Digest.String())
	if err != nil {
		t.Fatalf("cosign verify against the edge, upstream stopped: %v", err)
	}
	if !strings.Contains(out, dOK.Digest.String()) {
		t.Fatalf("cosign verify output does not name the digest: %s", out)
	}
	// The local copy keeps passing the policy without upstream.
	if ok, err := s.sync.BundleComplete(ctx, s.cfg.Repositories[0].URL, sha); err != nil || !ok {
		t.Fatalf("BundleComplete after landing = %v, %v", ok, err)
	}
}

// edgeTag is the edge tag of the image pushed for revision sha.
func (s *site) edgeTag(edge, sha string) string {
	r, _ := imageref.Parse(s.up.Repo("src/app") + ":" + sha[:8])
	return edge + "/" + r.EdgeRepository() + ":" + r.Tag
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// copyTag copies manifest repo:from to repo:to, through edit when set.
func copyTag(t *testing.T, repo, from, to string, edit func([]byte) []byte) {
	t.Helper()
	src := mustTag(t, repo+":"+from)
	desc, err := remote.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	raw := desc.Manifest
	if edit != nil {
		raw = edit(raw)
	}
	if err := remote.Put(mustTag(t, repo+":"+to), rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
}

// TestTrustCarriesImageSignatures signs, attests and attaches an SBOM to an
// image upstream with the real cosign CLI, bundles it with `ballast
// bundle`'s code (signing the index with the cosign key), syncs it to an
// edge that requires image signatures, and runs `cosign verify` and
// `cosign verify-attestation` against the edge registry with the upstream
// stopped. The same bundle carried by an export file lands signed at a
// second edge; an image without a signature is refused.
func TestTrustCarriesImageSignatures(t *testing.T) {
	cli := cosigncli.Find(t)
	key, pub := cli.KeyPair(t)
	s := newSite(t, func(c *config.Config) {
		c.Trust = &config.Trust{PublicKeys: []string{pub}, RequireImageSignatures: true}
	})
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	img := testimage.Image(t, "linux/amd64", 2, 8<<10)
	imgRef := s.up.Repo("src/app") + ":1.0"
	if err := remote.Write(mustTag(t, imgRef), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	byDigest := s.up.Repo("src/app") + "@" + d.String()
	if err := cli.Sign(ctx, key, byDigest); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pred := filepath.Join(dir, "predicate.json")
	sbom := filepath.Join(dir, "sbom.spdx.json")
	if err := os.WriteFile(pred, []byte(`{"builder":"ci","ok":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","packages":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cli.Attest(ctx, key, pred, byDigest); err != nil {
		t.Fatal(err)
	}
	if err := cli.AttachSBOM(ctx, sbom, byDigest); err != nil {
		t.Fatal(err)
	}
	// An unsigned image for the refusal case.
	bare := testimage.Image(t, "linux/amd64", 1, 2<<10)
	bareRef := s.up.Repo("src/bare") + ":1.0"
	if err := remote.Write(mustTag(t, bareRef), bare); err != nil {
		t.Fatal(err)
	}

	keyPEM, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := trust.LoadSigner(keyPEM, []byte(cosigncli.Password))
	if err != nil {
		t.Fatalf("load the cosign key: %v", err)
	}
	checkout := t.TempDir()
	if out, err := exec.Command("git", "clone", "-q", s.git.URL("fleet/apps"), checkout).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	bundleRev := func(sha string, images ...string) *release.Result {
		t.Helper()
		if out, err := exec.Command("git", "-C", checkout, "fetch", "-q", "origin", "main").CombinedOutput(); err != nil {
			t.Fatalf("git fetch: %v: %s", err, out)
		}
		res, err := release.Run(ctx, release.Options{RepoDir: checkout, Revision: sha, To: s.up.Repo(s.bundles),
			Config: &release.Config{ExtraImages: images}, RemoteOptions: []registryclient.Option{registryclient.WithInsecure(true)}, Signer: signer})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	sha := s.commit(map[string]string{"app": "1"})
	res := bundleRev(sha, imgRef)
	kinds := map[string]bool{}
	for _, a := range res.Attached {
		kinds[a.Kind] = a.Subject == d.String()
	}
	if len(res.Attached) != 3 || !kinds["sig"] || !kinds["att"] || !kinds["sbom"] || res.Signature != trust.SignatureTag(mustHash(t, res.BundleDigest)) {
		t.Fatalf("bundle: attached %+v, signature %q", res.Attached, res.Signature)
	}
	t.Logf("bytes added by the signature, attestation and SBOM of one image: %d", res.AttachedBytes)
	// Standard tools check the bundle upstream without ballast.
	if _, err := cli.Verify(ctx, pub, s.up.Repo(s.bundles)+"@"+res.BundleDigest); err != nil {
		t.Fatalf("cosign verify of the bundle upstream: %v", err)
	}

	if err := func() error {
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := s.sync.Pass(c)
		return err
	}(); err != nil {
		t.Fatal(err)
	}
	if st, reason := s.revState(sha); st != syncer.StateComplete {
		t.Fatalf("state %q (%s), want complete", st, reason)
	}

	// An export file of the same bundle, for the second edge below.
	exp := filepath.Join(t.TempDir(), "bundle.tar")
	er, err := sneakernet.Export(ctx, sneakernet.ExportOptions{Bundle: s.up.Repo(s.bundles) + ":" + sha, Output: exp,
		RemoteOptions: []registryclient.Option{registryclient.WithInsecure(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if !er.Signed {
		t.Fatal("export did not carry the bundle signature")
	}

	// With trust.requireImageSignatures, an image without a signature
	// keeps its whole bundle out.
	sha2 := s.commit(map[string]string{"app": "2"})
	res2 := bundleRev(sha2, imgRef, bareRef)
	if len(res2.Attached) != 3 {
		t.Fatalf("second bundle: attached %+v", res2.Attached)
	}
	if err := func() error {
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := s.sync.Pass(c)
		return err
	}(); !syncer.IsUntrusted(err) {
		t.Fatalf("pass with an unsigned image: err = %v, want untrusted", err)
	}
	if st, reason := s.revState(sha2); st != syncer.StateUntrusted || !strings.Contains(reason, "src/bare:1.0: no signature carried") {
		t.Fatalf("unsigned image: state %q (%s), want untrusted naming src/bare", st, reason)
	}
	if rep := s.check(sha2); rep.Bundle != nil {
		t.Fatal("bundle with an unsigned image is visible at the edge")
	}

	edge := s.serveEdge()
	s.up.Stop()
	r, _ := imageref.Parse(byDigest)
	edgeImage := edge + "/" + r.EdgeRepository() + "@" + d.String()
	if _, err := cli.Verify(ctx, pub, edgeImage); err != nil {
		t.Fatalf("cosign verify of the image against the edge, upstream stopped: %v", err)
	}
	if _, err := cli.VerifyAttestation(ctx, pub, edgeImage); err != nil {
		t.Fatalf("cosign verify-attestation against the edge, upstream stopped: %v", err)
	}
	if _, err := remote.Head(mustTag(t, edge+"/"+r.EdgeRepository()+":"+trust.Tag(d, ".sbom"))); err != nil {
		t.Fatalf("SBOM at the edge: %v", err)
	}
	br, _ := imageref.BundleRepository(s.cfg.Repositories[0].URL)
	if _, err := cli.Verify(ctx, pub, edge+"/"+br+"@"+res.BundleDigest); err != nil {
		repo, _ := name.NewRepository(edge+"/"+br, name.Insecure)
		tags, lerr := remote.List(repo)
		t.Fatalf("cosign verify of the bundle against the edge: %v (edge tags %v %v)", err, tags, lerr)
	}

	// A second edge takes the export file: signatures travel in it.
	s2 := newSite(t, func(c *config.Config) {
		c.Trust = &config.Trust{PublicKeys: []string{pub}, RequireImageSignatures: true}
	})
	if err := s2.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	edge2 := s2.serveEdge()
	if _, err := sneakernet.Import(ctx, sneakernet.ImportOptions{File: exp, Registry: edge2, RepoURL: s.cfg.Repositories[0].URL, Sync: s2.sync,
		RemoteOptions: []registryclient.Option{registryclient.WithInsecure(true)}}); err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := cli.Verify(ctx, pub, edge2+"/"+r.EdgeRepository()+"@"+d.String()); err != nil {
		t.Fatalf("cosign verify of the image at the edge fed by an export file: %v", err)
	}
	if _, err := cli.Verify(ctx, pub, edge2+"/"+br+"@"+res.BundleDigest); err != nil {
		t.Fatalf("cosign verify of the bundle at the edge fed by an export file: %v", err)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTrustCarriesReferrers carries OCI 1.1 referrers of two images: one
// from a registry with the referrers API (go-containerregistry's registry),
// one from Distribution 2.8, which has none, where the referrer was pushed
// by the tag schema (go-containerregistry's client keeps the sha256-<hex>
// index). At the edge, whose registry has no referrers API either, a
// standard client finds both through the tag schema with the upstreams
// stopped.
func TestTrustCarriesReferrers(t *testing.T) {
	s := newSite(t, nil)
	ctx := context.Background()
	withAPI := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer withAPI.Close()
	apiHost := strings.TrimPrefix(withAPI.URL, "http://")

	push := func(repo string) (string, v1.Descriptor, v1.Hash) {
		t.Helper()
		img := testimage.Image(t, "linux/amd64", 1, 2<<10)
		if err := remote.Write(mustTag(t, repo+":1.0"), img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		mt, _ := img.MediaType()
		size, _ := img.Size()
		subject := v1.Descriptor{MediaType: mt, Size: size, Digest: d}
		sbom := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		sbom = mutate.ConfigMediaType(sbom, "application/vnd.example.sbom.config+json")
		sbom, err := mutate.Append(sbom, mutate.Addendum{Layer: static.NewLayer([]byte(`{"spdxVersion":"SPDX-2.3"}`), "application/spdx+json")})
		if err != nil {
			t.Fatal(err)
		}
		sbom = mutate.Subject(sbom, subject).(v1.Image)
		rd, _ := sbom.Digest()
		if err := remote.Write(mustDigest(t, repo+"@"+rd.String()), sbom); err != nil {
			t.Fatal(err)
		}
		return repo + ":1.0", subject, rd
	}
	apiRef, apiSubj, apiReferrer := push(apiHost + "/src/app")
	tagRef, tagSubj, tagReferrer := push(s.up.Repo("src/other"))
	// The registry with the API keeps no tag-schema index: what the bundle
	// carries for it came through the API. Distribution 2.8 has the tag.
	if _, err := remote.Head(mustTag(t, apiHost+"/src/app:"+trust.Tag(apiSubj.Digest, ""))); err == nil {
		t.Fatal("the registry with the referrers API has a tag-schema index too")
	}
	if _, err := remote.Head(mustTag(t, s.up.Repo("src/other")+":"+trust.Tag(tagSubj.Digest, ""))); err != nil {
		t.Fatalf("Distribution 2.8 has no tag-schema index: %v", err)
	}

	sha := s.commit(map[string]string{"a": "1"})
	checkout := t.TempDir()
	if out, err := exec.Command("git", "clone", "-q", s.git.URL("fleet/apps"), checkout).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	res, err := release.Run(ctx, release.Options{RepoDir: checkout, Revision: sha, To: s.up.Repo(s.bundles),
		Config: &release.Config{ExtraImages: []string{apiRef, tagRef}}, RemoteOptions: []registryclient.Option{registryclient.WithInsecure(true)}})
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, a := range res.Attached {
		if a.Kind == "referrer" {
			subjects[a.Subject] = true
		}
	}
	if !subjects[apiSubj.Digest.String()] || !subjects[tagSubj.Digest.String()] {
		t.Fatalf("attached %+v: want the referrers of both images", res.Attached)
	}
	if _, err := s.sync.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if st, reason := s.revState(sha); st != syncer.StateComplete {
		t.Fatalf("state %q (%s)", st, reason)
	}
	edge := s.serveEdge()
	withAPI.Close()
	s.up.Stop()
	for _, c := range []struct {
		ref      string
		subject  v1.Descriptor
		referrer v1.Hash
	}{{apiRef, apiSubj, apiReferrer}, {tagRef, tagSubj, tagReferrer}} {
		r, _ := imageref.Parse(c.ref)
		idx, err := remote.Referrers(mustDigest(t, edge+"/"+r.EdgeRepository()+"@"+c.subject.Digest.String()))
		if err != nil {
			t.Fatalf("referrers of %s at the edge: %v", c.ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].Digest != c.referrer {
			t.Fatalf("referrers of %s at the edge: %+v, want %s", c.ref, im.Manifests, c.referrer)
		}
		if _, err := remote.Get(mustDigest(t, edge+"/"+r.EdgeRepository()+"@"+c.referrer.String())); err != nil {
			t.Fatalf("referrer %s at the edge: %v", c.referrer, err)
		}
	}
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestTrustOptionalSignatures: with trust.requireSignatures false an
// unsigned bundle lands, but one whose signature is present and made by
// an untrusted key is still refused.
func TestTrustOptionalSignatures(t *testing.T) {
	trusted, other := newSigner(t), newSigner(t)
	pub := filepath.Join(t.TempDir(), "cosign.pub")
	pemBytes, _ := trusted.PublicKeyPEM()
	if err := os.WriteFile(pub, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	no := false
	s := newSite(t, func(c *config.Config) {
		c.Trust = &config.Trust{PublicKeys: []string{pub}, RequireSignatures: &no}
		c.Repositories[0].KeepRevisions = 5
	})
	if err := s.cfg.Trust.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	img := testimage.Image(t, "linux/amd64", 1, 1<<10)
	sha := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, sha, map[string]artifact{s.up.Repo("src/app") + ":1": img})
	if _, err := s.sync.Pass(context.Background()); err != nil {
		t.Fatalf("unsigned bundle with signatures optional: %v", err)
	}
	if st, _ := s.revState(sha); st != syncer.StateComplete {
		t.Fatalf("unsigned bundle with signatures optional: state %q", st)
	}
	sha2 := s.commit(map[string]string{"a": "2"})
	d := pushBundle(t, s.up, s.bundles, sha2, map[string]artifact{s.up.Repo("src/app") + ":2": img})
	pushSignature(t, s.up.Repo(s.bundles), other, d)
	if _, err := s.sync.Pass(context.Background()); !syncer.IsUntrusted(err) {
		t.Fatalf("bundle signed by an untrusted key: err = %v, want untrusted", err)
	}
	if st, reason := s.revState(sha2); st != syncer.StateUntrusted || !strings.Contains(reason, "not signed by a trusted key") {
		t.Fatalf("state %q (%s)", st, reason)
	}
}

func newSigner(t *testing.T) *trust.Signer { return testkeys.Signer(t) }

// pushSignature signs manifest d of repo with s and pushes the signature
// under cosign's tag, as `ballast bundle --sign-key` does.
func pushSignature(t *testing.T, repo string, s *trust.Signer, d v1.Descriptor) {
	t.Helper()
	sig, err := s.Sign(repo, d)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.NewRepository(repo, name.Insecure)
	for _, blob := range sig.Blobs {
		if err := remote.WriteLayer(r, static.NewLayer(blob, "application/octet-stream")); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Put(mustTag(t, repo+":"+sig.Tag), rawManifest{sig.Manifest, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}
