package fleet_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/testutil/browser"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/trust"
)

// TestFleetPageWithRealEdge runs a real edge daemon (real git server,
// Debian's docker-registry as its bundles upstream) whose fleet section
// publishes to the hub (ballast's embedded registry, write credential from
// files, documents signed with fleet.signKey), next to a site that went
// silent ten hours ago, one whose document is malformed and one whose
// document is signed by another key; `ballast fleet`'s reader verifies the
// documents with the sites' key and builds the page, and headless Chromium
// checks it: the live site CURRENT with its revision, the silent one
// UNKNOWN with no revision shown, the broken one an error, the foreign-key
// one UNTRUSTED with no revision shown, and the page saying the documents
// were verified.
func TestFleetPageWithRealEdge(t *testing.T) {
	tab := browser.Start(t)
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	hubReg := edgeregistry.Start(t, edgeregistry.Options{})
	creds := hubReg.Credentials()
	h := hub{name: "embedded", host: hubReg.Host, user: creds.Username, pass: creds.Password, keychain: authn.NewMultiKeychain()}

	rev, d, appsID, sitePub := startPublishingEdge(t, git, up, h)
	dir := t.TempDir()
	sitesKey := loadSigner(t, sitePub)

	// A site silent for ten hours, one whose document is malformed, and
	// one whose document is signed by another key.
	old := doc("ship-03", rev)
	oldPub, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: hubReg.Host + "/fleet/sites/ship-03",
		Username: h.user, Password: h.pass, Insecure: true, StateFile: filepath.Join(dir, "old.json"), Signer: sitesKey,
		Now:    func() time.Time { return time.Now().Add(-10 * time.Hour) },
		Source: func(context.Context) (fleet.Document, error) { return old, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oldPub.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	pushBroken(t, h, "ship-99", []byte(`{"schema":1,"site":"ship-99","version":"x","repos":[],"extra":1}`))
	otherKey, _ := siteKey(t, dir, "other.pub")
	foreign := doc("ship-04", rev)
	foreignPub, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: hubReg.Host + "/fleet/sites/ship-04",
		Username: h.user, Password: h.pass, Insecure: true, StateFile: filepath.Join(dir, "foreign.json"), Signer: otherKey,
		Source: func(context.Context) (fleet.Document, error) { return foreign, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := foreignPub.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}

	f := waitReady(t, h, "ship-17", rev, d, sitePub)
	// The daemon's own status page says where it publishes.
	resp, err := http.Get(d.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Fleet status") || !strings.Contains(string(body), hubReg.Host+"/fleet/sites/ship-17") {
		t.Errorf("status page does not show the fleet publishing")
	}
	live := site(f, "ship-17").Document.Repos[0]
	if live.ID != appsID || len(live.Tracked) != 1 || live.Tracked[0].Ready != rev {
		t.Errorf("ship-17's repository: %+v", live)
	}
	// The link budget's use and the last successful link time.
	if b := site(f, "ship-17").Document.Budget; b == nil || b.LimitBytes != 10_000_000_000 || b.UsedBytes != 0 ||
		b.Period != "month "+time.Now().UTC().Format("2006-01") {
		t.Errorf("ship-17's budget: %+v", b)
	}
	if s := site(f, "ship-17"); s.LastLinkAt == nil || time.Since(*s.LastLinkAt) > 5*time.Minute {
		t.Errorf("ship-17's last link time: %v", s.LastLinkAt)
	}
	if s := site(f, "ship-03"); s.State != fleet.StateUnknown {
		t.Errorf("ship-03, silent for 10h: %+v", s)
	}
	if s := site(f, "ship-99"); s.State != fleet.StateError || !strings.Contains(s.Error, `unknown field "extra"`) {
		t.Errorf("ship-99, malformed: %+v", s)
	}
	if s := site(f, "ship-04"); s.State != fleet.StateUntrusted || s.Document != nil || !strings.Contains(s.Error, "not signed by a trusted key") {
		t.Errorf("ship-04, signed by another key: %+v", s)
	}
	if s := site(f, "ship-17"); s.SignedBy != sitePub {
		t.Errorf("ship-17 signed by %q, want %q", s.SignedBy, sitePub)
	}

	var page bytes.Buffer
	if err := f.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "fleet.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tab.Context(), 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate("file://"+file)); err != nil {
		t.Fatal(err)
	}
	rowText := func(s string) string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`document.querySelector('tr[data-site=%q]')?.innerText ?? ""`, s)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cell := func(s, class string) string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`document.querySelector('tr[data-site=%q] td.%s')?.innerText ?? "missing"`, s, class)))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(v)
	}
	if r := rowText("ship-17"); !strings.Contains(r, "CURRENT") || !strings.Contains(r, appsID) {
		t.Errorf("ship-17 row: %q", r)
	}
	if c := cell("ship-17", "note"); !strings.Contains(c, "budget month "+time.Now().UTC().Format("2006-01")+": 0 MB of 10000 MB used") {
		t.Errorf("ship-17 note cell: %q", c)
	}
	if c := cell("ship-17", "ready"); !strings.Contains(c, "main="+rev[:12]) {
		t.Errorf("ship-17 ready cell: %q", c)
	}
	r := rowText("ship-03")
	if !strings.Contains(r, "UNKNOWN") || strings.Contains(r, rev[:12]) || cell("ship-03", "ready") != "" {
		t.Errorf("ship-03 (silent) row shows a revision or no UNKNOWN: %q", r)
	}
	if r := rowText("ship-99"); !strings.Contains(r, "ERROR") || !strings.Contains(r, "extra") {
		t.Errorf("ship-99 row: %q", r)
	}
	r = rowText("ship-04")
	if !strings.Contains(r, "UNTRUSTED") || !strings.Contains(r, "not signed by a trusted key") || strings.Contains(r, rev[:12]) || cell("ship-04", "ready") != "" {
		t.Errorf("ship-04 (another key) row shows a revision or no UNTRUSTED: %q", r)
	}
	summary, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("summary").innerText`))
	if !strings.Contains(summary, "1 current, 1 unknown, 2 unreadable or untrusted") {
		t.Errorf("summary: %q", summary)
	}
	verification, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("verification").innerText`))
	if !strings.Contains(verification, "documents verified") {
		t.Errorf("verification line: %q", verification)
	}
	tab.Screenshot(t, "fleet-page.png")
	if p := tab.Problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// startPublishingEdge pushes a bundle for a new revision of fleet/apps to
// up, and starts a real edge daemon for it whose fleet section publishes
// as ship-17 to the hub h (write credential from files, interval 1s,
// documents signed with an encrypted cosign key whose password is in
// fleet.signPasswordFile). It returns the revision, the daemon, the
// repository's ID and the path of the site's public key.
func startPublishingEdge(t *testing.T, git *gitserver.Server, up *regserver.Server, h hub) (string, *edged.Daemon, string, string) {
	t.Helper()
	apps := git.CreateRepo(t, "fleet/apps")
	rev := apps.Commit("main", map[string]string{"README": "apps"})
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: up.User, Password: up.Password}))
	pushBundle(t, up.Repo("fleet/apps-bundles"), rev, map[string]v1.Image{
		"ghcr.io/org/app:stable": testimage.Image(t, "linux/amd64", 1, 64<<10),
	}, auth)
	dir := t.TempDir()
	keyFile, pubFile := encryptedKey(t, dir, "s3cret")
	userFile, passFile, signPassFile := filepath.Join(dir, "fleet-user"), filepath.Join(dir, "fleet-pass"), filepath.Join(dir, "sign-pass")
	for f, v := range map[string]string{userFile: h.user + "\n", passFile: h.pass + "\n", signPassFile: "s3cret\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &config.Config{
		DataDir: filepath.Join(dir, "edge"),
		Repositories: []config.Repository{{URL: git.URL("fleet/apps"), Bundles: up.Repo("fleet/apps-bundles"),
			Track: []string{"refs/heads/main"}, KeepRevisions: 5, PollInterval: config.Duration{Duration: time.Second}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}, h.host: {Insecure: true}},
		Fleet: &config.Fleet{Site: "ship-17", Repository: h.host + "/fleet/sites", UsernameFile: userFile, PasswordFile: passFile,
			Interval: config.Duration{Duration: time.Second}, Heartbeat: config.Duration{Duration: time.Hour},
			SignKey: keyFile, SignPasswordFile: signPassFile},
		Link: config.Link{Budget: &config.Budget{PerMonth: "10GB"}},
	}
	if up.User != "" { // the bundles upstream wants credentials too
		upUser, upPass := filepath.Join(dir, "up-user"), filepath.Join(dir, "up-pass")
		for f, v := range map[string]string{upUser: up.User, upPass: up.Password} {
			if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg.UpstreamRegistries[up.Addr] = config.UpstreamRegistry{UsernameFile: upUser, PasswordFile: upPass, Insecure: true}
	}
	if err := cfg.Fleet.LoadSigner(); err != nil { // as config.Load does
		t.Fatal(err)
	}
	d := edged.Start(t, cfg)

	appsID, _ := imageref.RepoID(git.URL("fleet/apps"))
	return rev, d, appsID, pubFile
}

// encryptedKey writes a key pair as `cosign generate-key-pair` does
// (encrypted with password) to dir and returns the key and public key paths.
func encryptedKey(t *testing.T, dir, password string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(k, cryptoutils.StaticPasswordFunc([]byte(password)))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(dir, "site.key"), filepath.Join(dir, "site.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubFile, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, pubFile
}

// loadSigner loads the private key beside the public key file pub (as
// encryptedKey writes them), for simulated sites that share the daemon's.
func loadSigner(t *testing.T, pub string) *trust.Signer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(pub), "site.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.LoadSigner(raw, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitReady reads the hub, verifying with the public key files keys,
// until site is current with rev ready.
func waitReady(t *testing.T, h hub, name, rev string, d *edged.Daemon, keys ...string) *fleet.Fleet {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	k, err := fleet.LoadKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fleet.Read(context.Background(), fleet.ReadOptions{Repository: h.host + "/fleet/sites", Insecure: true, Keychain: h.keychain, Keys: k})
		if err != nil {
			t.Fatal(err)
		}
		if s := site(f, name); s.State == fleet.StateCurrent && len(s.Document.Repos) == 1 &&
			len(s.Document.Repos[0].Ready) == 1 && s.Document.Repos[0].Ready[0] == rev {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never published %s as ready: %+v; daemon fleet status %+v", name, rev, site(f, name), d.Status().Fleet)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestEdgeDaemonPublishesToDockerRegistry: the same real daemon with
// Debian's docker-registry (htpasswd) as the hub, which is also its
// bundles upstream, as a site that has one registry would have it.
func TestEdgeDaemonPublishesToDockerRegistry(t *testing.T) {
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	hubReg := regserver.Start(t, regserver.Options{Auth: true})
	h := hub{name: "docker-registry", host: hubReg.Addr, user: hubReg.User, pass: hubReg.Password,
		keychain: staticKeychain{hubReg.User, hubReg.Password}}
	rev, d, appsID, pub := startPublishingEdge(t, git, hubReg, h)
	f := waitReady(t, h, "ship-17", rev, d, pub)
	if r := site(f, "ship-17").Document.Repos[0]; r.ID != appsID || r.Tracked[0].Ready != rev {
		t.Errorf("ship-17: %+v", r)
	}
	if st := d.Status().Fleet; st == nil || st.LastError != "" || st.Publishes < 1 {
		t.Errorf("daemon's fleet status: %+v", st)
	}
}

func site(f *fleet.Fleet, name string) fleet.SiteView {
	for _, s := range f.Sites {
		if s.Site == name {
			return s
		}
	}
	return fleet.SiteView{Site: name, State: "absent"}
}

// pushBundle pushes the images and a bundle for rev to the upstream
// bundle repository, as CI does.
func pushBundle(t *testing.T, repo, rev string, images map[string]v1.Image, opts ...remote.Option) {
	t.Helper()
	b := bundle.Bundle{Revision: rev, Created: time.Now()}
	for ref, img := range images {
		r, err := imageref.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		dg, _ := img.Digest()
		size, _ := img.Size()
		mt, _ := img.MediaType()
		dst, _ := name.NewDigest(repo+"@"+dg.String(), name.Insecure)
		if err := remote.Write(dst, img, opts...); err != nil {
			t.Fatal(err)
		}
		b.Images = append(b.Images, bundle.Image{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: dg}})
	}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(repo+":"+rev, name.Insecure)
	if err := remote.Put(tag, typedManifest{raw, desc.MediaType}, opts...); err != nil {
		t.Fatal(err)
	}
}

type typedManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m typedManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m typedManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
