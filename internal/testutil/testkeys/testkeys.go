// Package testkeys makes throwaway cosign-style signing keys for tests: an
// ECDSA P-256 key as trust.LoadSigner reads it, and its public key as a PEM
// file ("PUBLIC KEY", as `cosign generate-key-pair` writes cosign.pub).
package testkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/ballast-dev/ballast/internal/trust"
)

// Signer returns a new unencrypted P-256 signing key.
func Signer(t testing.TB) *trust.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cryptoutils.MarshalPrivateKeyToPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WritePublicKey writes s's public key as PEM to path (mode 0644) and
// returns path.
func WritePublicKey(t testing.TB, s *trust.Signer, path string) string {
	t.Helper()
	pub, err := s.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
