package fleet

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/ballast-dev/ballast/internal/trust"
)

// answers is a hostile registry's answers: the signature manifest for any
// manifests/ URL and the payload for any blobs/ URL.
type answers struct{ manifest, payload []byte }

func (a answers) RoundTrip(r *http.Request) (*http.Response, error) {
	body := a.payload
	if strings.Contains(r.URL.Path, "/manifests/") {
		body = a.manifest
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(body)), Request: r, Header: http.Header{}}, nil
}

// FuzzVerifySignature feeds the hub's signature check whatever a hostile
// site's repository could hold as the signature manifest and its payload:
// it never panics, and anything but a real signature is untrusted (or a
// fetch error), never verified.
func FuzzVerifySignature(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		f.Fatal(err)
	}
	key, err := trust.ParsePublicKey("site.pub", pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:`+
		strings.Repeat("a", 64)+`","size":10,"annotations":{"dev.cosignproject.cosign/signature":"AAAA"}}]}`), []byte("0123456789"))
	f.Add([]byte(`{}`), []byte(`{"critical":{}}`))
	f.Add([]byte(`not json`), []byte{})
	digest := "sha256:" + strings.Repeat("b", 64)
	f.Fuzz(func(t *testing.T, manifest, payload []byte) {
		client := &http.Client{Transport: answers{manifest, payload}}
		by, err := verifySignature(context.Background(), client, "http://hub.invalid/v2/fleet/sites/s", digest, 100, []trust.Key{key})
		if err == nil {
			t.Fatalf("verified by %q: a signature nobody made", by)
		}
		if !errors.Is(err, errUntrusted) && !strings.HasPrefix(err.Error(), "signature: ") {
			t.Fatalf("error neither untrusted nor a fetch error: %v", err)
		}
	})
}
