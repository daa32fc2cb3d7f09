package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/testkeys"
)

func writePub(t *testing.T, dir, name string) string {
	t.Helper()
	return testkeys.WritePublicKey(t, testkeys.Signer(t), filepath.Join(dir, name))
}

func TestTrustLoad(t *testing.T) {
	dir := t.TempDir()
	writePub(t, dir, "old.pub")
	writePub(t, dir, "new.pub")
	if err := os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(dir, "edge.yaml")
		if err := os.WriteFile(p, []byte("dataDir: /d\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load(write("trust:\n  publicKeys: [old.pub, new.pub]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Trust.Keys()) != 2 || !c.Trust.SignaturesRequired() || c.Trust.RequireImageSignatures {
		t.Fatalf("trust = %+v (keys %d), want 2 keys, signatures required by default", c.Trust, len(c.Trust.Keys()))
	}
	if c.Trust.PublicKeys[0] != filepath.Join(dir, "old.pub") {
		t.Fatalf("path %q not resolved against the config's directory", c.Trust.PublicKeys[0])
	}
	for _, tc := range []struct{ body, want string }{
		{"trust:\n  publicKeys: [old.pub, bad.pub]\n", "trust.publicKeys[1]: public key " + filepath.Join(dir, "bad.pub")},
		{"trust:\n  publicKeys: [missing.pub]\n", "trust.publicKeys[0]: open " + filepath.Join(dir, "missing.pub")},
		{"trust:\n  publicKeys: [edge.yaml]\n", "trust.publicKeys[0]: public key"},
		{"trust:\n  publicKeys: []\n", "trust.publicKeys: at least one"},
		{"trust:\n  publicKeys: [old.pub, old.pub]\n", "listed twice"},
		{"trust:\n  publicKeys: [old.pub]\n  requireSignatures: false\n  requireImageSignatures: true\n", "trust.requireImageSignatures: needs"},
		{"trust:\n  publicKeys: [old.pub]\n  requireSignature: true\n", `unknown field "requireSignature"`},
	} {
		_, err := Load(write(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want one containing %q", tc.body, err, tc.want)
		}
	}
}
