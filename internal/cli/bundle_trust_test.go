package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/cosigncli"
)

// TestBundleSignKey signs a bundle with a key made by the real cosign CLI
// and checks it with `cosign verify --key`; bad keys and a missing
// password are bad input (exit 2) that names the flag.
func TestBundleSignKey(t *testing.T) {
	cli := cosigncli.Find(t)
	key, pub := cli.KeyPair(t)
	f := newBundleFixture(t)
	to := f.reg.Repo("fleet/apps-bundles")

	t.Setenv("COSIGN_PASSWORD", cosigncli.Password)
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to, "--sign-key", key)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if r.Signature != "sha256-"+strings.TrimPrefix(r.BundleDigest, "sha256:")+".sig" {
		t.Fatalf("signature tag %q for bundle %s", r.Signature, r.BundleDigest)
	}
	if _, err := cli.Verify(context.Background(), pub, to+"@"+r.BundleDigest); err != nil {
		t.Fatalf("cosign verify of the signed bundle: %v", err)
	}

	// An image's own signature is carried, unless --no-attached.
	web := f.reg.Repo("src/web")
	if err := cli.Sign(context.Background(), key, web+"@"+f.want[web+":1.0"].String()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags []string
		want  int
	}{{nil, 1}, {[]string{"--no-attached"}, 0}} {
		r, errOut, code := runBundle(t, append([]string{"--repo", f.repo, "--to", to, "--dry-run"}, tc.flags...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.flags, code, errOut)
		}
		if len(r.Attached) != tc.want || (tc.want == 1 && r.Attached[0].Kind != "sig") {
			t.Fatalf("%v: attached %+v, want %d signature(s)", tc.flags, r.Attached, tc.want)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key, password string
		unset               bool
		want                string
	}{
		{"wrong password", key, "wrong", false, "--sign-key " + key},
		{"no password", key, "", true, "COSIGN_PASSWORD is not set"},
		{"not a key", bad, "x", false, "--sign-key " + bad},
		{"missing file", filepath.Join(t.TempDir(), "none.key"), "x", false, "--sign-key"},
		{"public key", pub, "x", false, "--sign-key " + pub},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.unset {
				os.Unsetenv("COSIGN_PASSWORD")
			} else {
				t.Setenv("COSIGN_PASSWORD", tc.password)
			}
			_, errOut, code := runCLI(t, "bundle", "--repo", f.repo, "--to", to, "--sign-key", tc.key)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %q", code, errOut, tc.want)
			}
		})
	}
}
