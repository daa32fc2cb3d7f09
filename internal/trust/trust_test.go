package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// keyPair makes a key pair as `cosign generate-key-pair` writes it: an
// encrypted "ENCRYPTED SIGSTORE PRIVATE KEY" and a "PUBLIC KEY".
func keyPair(tb testing.TB, password string) (priv, pub []byte) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(k, cryptoutils.StaticPasswordFunc([]byte(password)))
	if err != nil {
		tb.Fatal(err)
	}
	priv = pem.EncodeToMemory(&pem.Block{Type: string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), Bytes: der})
	pub, err = cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return priv, pub
}

func digestOf(s string) v1.Hash {
	h, _, _ := v1.SHA256(strings.NewReader(s))
	return h
}

func fetcher(blobs map[v1.Hash][]byte) BlobFetcher {
	return func(_ context.Context, d v1.Descriptor, max int64) ([]byte, error) {
		b, ok := blobs[d.Digest]
		if !ok {
			return nil, fmt.Errorf("blob %s: not found", d.Digest)
		}
		if int64(len(b)) > max {
			return nil, fmt.Errorf("blob %s too large", d.Digest)
		}
		return b, nil
	}
}

func TestSignVerify(t *testing.T) {
	privA, pubA := keyPair(t, "pw-a")
	_, pubB := keyPair(t, "pw-b")
	signer, err := LoadSigner(privA, []byte("pw-a"))
	if err != nil {
		t.Fatal(err)
	}
	keyA, err := ParsePublicKey("a.pub", pubA)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := ParsePublicKey("b.pub", pubB)
	if err != nil {
		t.Fatal(err)
	}
	subject := v1.Descriptor{MediaType: types.OCIImageIndex, Size: 123, Digest: digestOf("index")}
	sig, err := signer.Sign("registry.example.com/fleet/apps-bundles", subject)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256-" + subject.Digest.Hex + ".sig"; sig.Tag != want {
		t.Fatalf("tag %q, want %q", sig.Tag, want)
	}
	var m v1.Manifest
	if err := json.Unmarshal(sig.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Subject == nil || m.Subject.Digest != subject.Digest {
		t.Fatalf("subject %+v, want %s", m.Subject, subject.Digest)
	}
	ctx := context.Background()

	t.Run("good, with rotation", func(t *testing.T) {
		v, err := Verify(ctx, subject.Digest, sig.Manifest, []Key{keyB, keyA}, fetcher(sig.Blobs))
		if err != nil || v.Key != "a.pub" {
			t.Fatalf("Verify = %+v, %v; want signed by a.pub", v, err)
		}
	})
	t.Run("another key", func(t *testing.T) {
		_, err := Verify(ctx, subject.Digest, sig.Manifest, []Key{keyB}, fetcher(sig.Blobs))
		if !errors.Is(err, ErrUntrustedKey) {
			t.Fatalf("err = %v, want ErrUntrustedKey", err)
		}
	})
	t.Run("another digest", func(t *testing.T) {
		_, err := Verify(ctx, digestOf("other index"), sig.Manifest, []Key{keyA}, fetcher(sig.Blobs))
		if !errors.Is(err, ErrOtherDigest) {
			t.Fatalf("err = %v, want ErrOtherDigest", err)
		}
	})
	t.Run("tampered signature", func(t *testing.T) {
		layers, err := ParseSignatureManifest(sig.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte(nil), layers[0].Signature...)
		bad[len(bad)/2] ^= 0x55
		raw := bytes.Replace(sig.Manifest, []byte(base64.StdEncoding.EncodeToString(layers[0].Signature)), []byte(base64.StdEncoding.EncodeToString(bad)), 1)
		_, err = Verify(ctx, subject.Digest, raw, []Key{keyA}, fetcher(sig.Blobs))
		if !errors.Is(err, ErrUntrustedKey) {
			t.Fatalf("err = %v, want ErrUntrustedKey", err)
		}
	})
	t.Run("tampered payload", func(t *testing.T) {
		blobs := map[v1.Hash][]byte{}
		for h, b := range sig.Blobs {
			blobs[h] = bytes.Replace(b, []byte(subject.Digest.Hex), []byte(digestOf("x").Hex), 1)
		}
		_, err := Verify(ctx, subject.Digest, sig.Manifest, []Key{keyA}, fetcher(blobs))
		if err == nil || !strings.Contains(err.Error(), "digest") {
			t.Fatalf("err = %v, want a digest mismatch", err)
		}
	})
	t.Run("no signature layer", func(t *testing.T) {
		raw := bytes.ReplaceAll(sig.Manifest, []byte(SimpleSigningMediaType), []byte("application/octet-stream"))
		_, err := Verify(ctx, subject.Digest, raw, []Key{keyA}, fetcher(sig.Blobs))
		if !errors.Is(err, ErrUnsigned) {
			t.Fatalf("err = %v, want ErrUnsigned", err)
		}
	})
	t.Run("no keys", func(t *testing.T) {
		if _, err := Verify(ctx, subject.Digest, sig.Manifest, nil, fetcher(sig.Blobs)); err == nil {
			t.Fatal("Verify without keys succeeded")
		}
	})
	t.Run("public key of the signer", func(t *testing.T) {
		p, err := signer.PublicKeyPEM()
		if err != nil || !bytes.Equal(p, pubA) {
			t.Fatalf("PublicKeyPEM = %q, %v; want %q", p, err, pubA)
		}
	})
}

func TestLoadSignerErrors(t *testing.T) {
	priv, pub := keyPair(t, "right")
	for _, tc := range []struct {
		name     string
		pem, pw  []byte
		contains string
	}{
		{"wrong password", priv, []byte("wrong"), "private key"},
		{"not PEM", []byte("hello"), nil, "PEM"},
		{"public key", pub, nil, "private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSigner(tc.pem, tc.pw)
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err = %v, want one containing %q", err, tc.contains)
			}
		})
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	priv, _ := keyPair(t, "x")
	for _, in := range [][]byte{nil, []byte("garbage"), priv,
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")})} {
		if _, err := ParsePublicKey("k.pub", in); err == nil || !strings.Contains(err.Error(), "k.pub") {
			t.Errorf("ParsePublicKey(%.20q) err = %v, want an error naming k.pub", in, err)
		}
	}
}

func TestParseSignatureManifestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"not JSON", "{", ErrMalformed},
		{"schema 1", `{"schemaVersion":1}`, ErrMalformed},
		{"no layers", `{"schemaVersion":2,"layers":[]}`, ErrUnsigned},
		{"bad base64", `{"schemaVersion":2,"layers":[{"mediaType":"` + SimpleSigningMediaType + `","size":10,"digest":"sha256:` + strings.Repeat("a", 64) + `","annotations":{"` + SignatureAnnotation + `":"!!"}}]}`, ErrMalformed},
		{"huge payload", `{"schemaVersion":2,"layers":[{"mediaType":"` + SimpleSigningMediaType + `","size":999999999,"digest":"sha256:` + strings.Repeat("a", 64) + `","annotations":{"` + SignatureAnnotation + `":"AA=="}}]}`, ErrMalformed},
		{"bad digest", `{"schemaVersion":2,"layers":[{"mediaType":"` + SimpleSigningMediaType + `","size":10,"digest":"sha256:zz","annotations":{"` + SignatureAnnotation + `":"AA=="}}]}`, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSignatureManifest([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParsePayload(t *testing.T) {
	d := digestOf("x")
	good := `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`
	if h, err := ParsePayload([]byte(good)); err != nil || h != d {
		t.Fatalf("ParsePayload = %v, %v", h, err)
	}
	for _, in := range []string{"", "[]", strings.Replace(good, "cosign container", "other", 1), strings.Replace(good, d.String(), "sha256:12", 1)} {
		if _, err := ParsePayload([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePayload(%q) err = %v, want ErrMalformed", in, err)
		}
	}
}

func FuzzParseSignatureManifest(f *testing.F) {
	priv, _ := keyPair(f, "pw")
	s, err := LoadSigner(priv, []byte("pw"))
	if err != nil {
		f.Fatal(err)
	}
	sig, err := s.Sign("r", v1.Descriptor{MediaType: types.OCIImageIndex, Size: 1, Digest: digestOf("i")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig.Manifest)
	f.Add([]byte(`{"schemaVersion":2,"layers":[{}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		layers, err := ParseSignatureManifest(raw)
		if err == nil && len(layers) == 0 {
			t.Fatal("no error and no signatures")
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:` + strings.Repeat("0", 64) + `"},"type":"cosign container image signature"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if h, err := ParsePayload(raw); err == nil && h.Algorithm != "sha256" {
			t.Fatalf("accepted digest %v", h)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	_, pub := keyPair(f, "pw")
	f.Add(pub)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = ParsePublicKey("fuzz.pub", raw)
	})
}
