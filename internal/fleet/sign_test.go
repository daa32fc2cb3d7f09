package fleet_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/testutil/cosigncli"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/trust"
)

// siteKey makes a key pair (an unencrypted PKCS#8 key: cosign's scrypt
// encryption costs about a second a key, too slow for 500 sites; the
// encrypted form is covered by the config and page tests) and returns the
// signer and the path of the public key file.
func siteKey(t testing.TB, dir, name string) (*trust.Signer, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.LoadSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// TestSignedDocuments publishes signed and unsigned documents to each real
// hub and reads them with and without keys: a signed document is CURRENT
// with the key that signed it, a heartbeat keeps the signature valid (one
// request, no new signature), and an unsigned document, one signed by
// another key, a tampered document and a signature moved onto another
// document are UNTRUSTED with the reason, never ready. Rotating the
// edge's key re-signs at once; the hub accepts old and new keys while
// both are given, and per-site keys from a directory count for their site
// only.
func TestSignedDocuments(t *testing.T) {
	keyDir := t.TempDir()
	signA, pubA := siteKey(t, keyDir, "a.pub")
	signB, pubB := siteKey(t, keyDir, "b.pub")
	perSite := t.TempDir()
	_, _ = siteKey(t, perSite, "ship-9.pub") // a key for another site only
	if err := os.MkdirAll(filepath.Join(perSite, "ship-3"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pubB)
	if err := os.WriteFile(filepath.Join(perSite, "ship-3", "2027.pub"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, h := range hubs(t) {
		t.Run(h.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
			var c counter
			states := t.TempDir()
			newPub := func(site string, src *fleet.Document, signer *trust.Signer) *fleet.Publisher {
				p, err := fleet.NewPublisher(fleet.PublisherOptions{
					Repository: h.host + "/fleet/sites/" + site, Username: h.user, Password: h.pass, Insecure: true,
					StateFile: filepath.Join(states, site+".json"), Heartbeat: 2 * time.Hour,
					Now: func() time.Time { return now }, Transport: c.transport(), Signer: signer,
					Source: func(context.Context) (fleet.Document, error) { return *src, nil },
				})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			publish := func(p *fleet.Publisher, want fleet.Result) (requests, bytes int64) {
				t.Helper()
				r0, b0 := c.snapshot()
				if got, err := p.PublishOnce(ctx); err != nil || got != want {
					t.Fatalf("publish: %v, %v; want %v", got, err, want)
				}
				r1, b1 := c.snapshot()
				return r1 - r0, b1 - b0
			}
			read := func(keyPaths ...string) (*fleet.Fleet, map[string]fleet.SiteView) {
				t.Helper()
				o := fleet.ReadOptions{Repository: h.host + "/fleet/sites", Insecure: true, Keychain: h.keychain,
					Now: func() time.Time { return now.Add(time.Minute) }}
				if len(keyPaths) > 0 {
					k, err := fleet.LoadKeys(keyPaths)
					if err != nil {
						t.Fatal(err)
					}
					o.Keys = k
				}
				f, err := fleet.Read(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]fleet.SiteView{}
				for _, s := range f.Sites {
					out[s.Site] = s
				}
				var text bytes.Buffer
				_ = f.WriteText(&text)
				t.Logf("keys %v:\n%s", keyPaths, text.String())
				return f, out
			}
			untrusted := func(sites map[string]fleet.SiteView, site, reason string) {
				t.Helper()
				s := sites[site]
				if s.State != fleet.StateUntrusted || s.Document != nil || s.LastKnown != nil || !strings.Contains(s.Error, reason) {
					t.Errorf("%s: %+v; want untrusted: %q", site, s, reason)
				}
			}

			// ship-1: signed by A. A change costs the signature once; the
			// heartbeat is still one request and leaves it valid.
			d1 := doc("ship-1", rev1)
			p1 := newPub("ship-1", &d1, signA)
			r, by := publish(p1, fleet.Changed)
			if !p1.Status().Signed {
				t.Error("the publisher's status does not say it signs")
			}
			t.Logf("signed change: %d requests, %d bytes", r, by)
			now = now.Add(2 * time.Hour)
			if r, by := publish(p1, fleet.Heartbeat); r != 1 {
				t.Errorf("signed heartbeat: %d requests (%d bytes), want 1", r, by)
			}
			// ship-2: unsigned. ship-3: signed by B.
			d2, d3 := doc("ship-2", rev1), doc("ship-3", rev2)
			publish(newPub("ship-2", &d2, nil), fleet.Changed)
			publish(newPub("ship-3", &d3, signB), fleet.Changed)

			// ship-4: signed by A, then its document replaced (a tampered
			// "latest"), no signature for the new one.
			d4 := doc("ship-4", rev1)
			publish(newPub("ship-4", &d4, signA), fleet.Changed)
			pushBroken(t, h, "ship-4", mustEncode(t, doc("ship-4", rev2)))

			// ship-5: signed by A, then its document replaced and the old
			// signature copied onto the new document's signature tag.
			d5 := doc("ship-5", rev1)
			publish(newPub("ship-5", &d5, signA), fleet.Changed)
			moveSignature(t, h, "ship-5", mustEncode(t, d5), mustEncode(t, doc("ship-5", rev2)))

			f, sites := read()
			if f.Verified || sites["ship-2"].State != fleet.StateCurrent || sites["ship-2"].SignedBy != "" {
				t.Errorf("without keys: verified %v, ship-2 %+v", f.Verified, sites["ship-2"])
			}
			var text bytes.Buffer
			_ = f.WriteText(&text)
			if !strings.Contains(text.String(), "documents NOT verified (no --key)") {
				t.Errorf("the table does not say the documents are unverified:\n%s", text.String())
			}

			f, sites = read(pubA)
			if s := sites["ship-1"]; !f.Verified || s.State != fleet.StateCurrent || s.SignedBy != pubA || s.Document == nil {
				t.Errorf("ship-1 signed by A after a heartbeat: %+v", s)
			}
			untrusted(sites, "ship-2", "document not signed (no sha256-")
			untrusted(sites, "ship-3", "not signed by a trusted key")
			untrusted(sites, "ship-4", "document not signed")
			untrusted(sites, "ship-5", "signature is for another digest")
			var js, page bytes.Buffer
			if err := json.NewEncoder(&js).Encode(f); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(js.String(), `"verified":true`) || !strings.Contains(js.String(), `"state":"untrusted"`) {
				t.Errorf("JSON: %s", js.String())
			}
			if err := f.WriteHTML(&page); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(page.String(), `data-site="ship-3" data-state="untrusted"`) || !strings.Contains(page.String(), "documents verified") {
				t.Errorf("HTML page does not show ship-3 untrusted")
			}

			// Old and new key given (rotation on the hub): ship-3 counts.
			if _, sites = read(pubA, pubB); sites["ship-3"].State != fleet.StateCurrent || sites["ship-3"].SignedBy != pubB {
				t.Errorf("ship-3 with keys A and B: %+v", sites["ship-3"])
			}

			// The edge rotates to key B: an unchanged document is signed
			// again at once (no waiting for the heartbeat).
			now = now.Add(5 * time.Minute)
			p1 = newPub("ship-1", &d1, signB)
			publish(p1, fleet.Heartbeat)
			publish(p1, fleet.Skipped)
			_, sites = read(pubA)
			untrusted(sites, "ship-1", "not signed by a trusted key")
			if _, sites = read(pubA, pubB); sites["ship-1"].State != fleet.StateCurrent || sites["ship-1"].SignedBy != pubB {
				t.Errorf("ship-1 re-signed by B: %+v", sites["ship-1"])
			}

			// Per-site keys: B is trusted for ship-3 only (perSite/ship-3/),
			// so ship-1, signed by B, is not.
			_, sites = read(pubA, perSite)
			if sites["ship-3"].State != fleet.StateCurrent {
				t.Errorf("ship-3 with its own key directory: %+v", sites["ship-3"])
			}
			untrusted(sites, "ship-1", "not signed by a trusted key")
			_, sites = read(perSite)
			untrusted(sites, "ship-4", "no --key is trusted for this site")
		})
	}
}

// moveSignature writes a status artifact with document newDoc and copies
// the signature of oldDoc onto newDoc's signature tag: a signature that
// verifies, but of another digest.
func moveSignature(t *testing.T, h hub, site string, oldDoc, newDoc []byte) {
	t.Helper()
	pushBroken(t, h, site, newDoc)
	repo, _ := name.NewRepository(h.host+"/fleet/sites/"+site, name.Insecure)
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: h.user, Password: h.pass}))
	docDigest := func(b []byte) v1.Hash {
		l, _, _ := v1.SHA256(bytes.NewReader(b))
		dm, err := fleet.DocumentManifest(v1.Descriptor{Digest: l, Size: int64(len(b))})
		if err != nil {
			t.Fatal(err)
		}
		d, _, _ := v1.SHA256(bytes.NewReader(dm))
		return d
	}
	old, err := remote.Get(repo.Tag(trust.SignatureTag(docDigest(oldDoc))), auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Tag(trust.SignatureTag(docDigest(newDoc))), rawManifest{old.Manifest}, auth); err != nil {
		t.Fatal(err)
	}
}

// TestCosignVerifiesSiteDocument: the real cosign CLI verifies a site's
// signed document in the hub registry with the site's public key (cosign's
// own key files), and refuses it with another key.
func TestCosignVerifiesSiteDocument(t *testing.T) {
	cli := cosigncli.Find(t)
	keyFile, pubFile := cli.KeyPair(t)
	_, otherPub := cli.KeyPair(t)
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := trust.LoadSigner(raw, []byte(cosigncli.Password))
	if err != nil {
		t.Fatal(err)
	}
	// cosign reads anonymously: the embedded registry allows anonymous
	// reads; docker-registry runs without auth here.
	emb := edgeregistry.Start(t, edgeregistry.Options{})
	ec := emb.Credentials()
	deb := regserver.Start(t, regserver.Options{})
	for _, h := range []hub{{name: "embedded", host: emb.Host, user: ec.Username, pass: ec.Password}, {name: "docker-registry", host: deb.Addr}} {
		t.Run(h.name, func(t *testing.T) {
			ctx := context.Background()
			d := doc("ship-1", rev1)
			p, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: h.host + "/fleet/sites/ship-1",
				Username: h.user, Password: h.pass, Insecure: true, StateFile: filepath.Join(t.TempDir(), "s"), Signer: signer,
				Source: func(context.Context) (fleet.Document, error) { return d, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.PublishOnce(ctx); err != nil {
				t.Fatal(err)
			}
			ref := h.host + "/fleet/sites/ship-1:" + fleet.DocumentTag
			if out, err := cli.Verify(ctx, pubFile, ref); err != nil {
				t.Fatalf("cosign verify --key site.pub %s: %v", ref, err)
			} else {
				t.Logf("cosign verify: %s", out)
			}
			if _, err := cli.Verify(ctx, otherPub, ref); err == nil {
				t.Fatal("cosign verify accepted the document with another key")
			}
		})
	}
}

// TestLoadKeysErrors: every bad --key names the file.
func TestLoadKeysErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.pub", "not a key")
	badName := t.TempDir()
	_, _ = siteKey(t, badName, "Ship_1.pub")
	emptySite := t.TempDir()
	if err := os.Mkdir(filepath.Join(emptySite, "ship-1"), 0o700); err != nil {
		t.Fatal(err)
	}
	noKeys := t.TempDir()
	write2 := filepath.Join(noKeys, "README")
	if err := os.WriteFile(write2, []byte("keys go here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{filepath.Join(dir, "nope.pub")}, "nope.pub"},
		{[]string{garbage}, "public key " + garbage},
		{[]string{badName}, "Ship_1.pub: a key file in a directory must be named <site>.pub"},
		{[]string{emptySite}, "ship-1: no *.pub key in it"},
		{[]string{noKeys}, "no public key in " + noKeys},
	} {
		if _, err := fleet.LoadKeys(tc.paths); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.paths, err, tc.want)
		}
	}
}

// TestSignedHeartbeatSize: with signing, an unchanged site's heartbeat is
// the same single manifest PUT as without.
func TestSignedHeartbeatSize(t *testing.T) {
	reg := edgeregistry.Start(t, edgeregistry.Options{})
	creds := reg.Credentials()
	signer, _ := siteKey(t, t.TempDir(), "k.pub")
	sizes := map[bool]int64{}
	for _, signed := range []bool{false, true} {
		var s *trust.Signer
		if signed {
			s = signer
		}
		now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
		var c counter
		d := doc("ship-8", rev1)
		p, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: reg.Host + "/fleet/sites/ship-8", Username: creds.Username,
			Password: creds.Password, Insecure: true, StateFile: filepath.Join(t.TempDir(), "s"), Signer: s,
			Now: func() time.Time { return now }, Transport: c.transport(), Heartbeat: 2 * time.Hour,
			Source: func(context.Context) (fleet.Document, error) { return d, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PublishOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Hour)
		r0, b0 := c.snapshot()
		if res, err := p.PublishOnce(context.Background()); err != nil || res != fleet.Heartbeat {
			t.Fatalf("heartbeat: %v %v", res, err)
		}
		r1, b1 := c.snapshot()
		if r1-r0 != 1 {
			t.Errorf("signed=%v: heartbeat of %d requests", signed, r1-r0)
		}
		sizes[signed] = b1 - b0
	}
	t.Logf("heartbeat bytes: unsigned %d, signed %d", sizes[false], sizes[true])
	if d := sizes[true] - sizes[false]; d > 64 || d < -64 {
		t.Errorf("signing changed the heartbeat by %d bytes", d)
	}
}
