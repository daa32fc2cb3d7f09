package registry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func mustHash(t testing.TB, body string) v1.Hash {
	t.Helper()
	return v1.Hash{Algorithm: "sha256", Hex: sha256Hex(body)}
}

// validateImage re-reads every blob of img and checks its digest.
func validateImage(img v1.Image) error { return validate.Image(img) }
