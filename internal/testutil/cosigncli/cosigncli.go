// Package cosigncli is the one test helper for the real cosign CLI, as
// test/e2e/deps/build.sh builds it (pinned, from the Go module proxy):
// $BALLAST_COSIGN, else ${BALLAST_E2E_CACHE:-~/.cache/ballast/e2e}/cosign-<Version>/cosign.
// A missing binary goes through realtest, so under BALLAST_REQUIRE_REAL=1 it
// fails the test. Every run is offline: key-based, no transparency log
// upload, no TUF root, plain HTTP to loopback registries, HOME and TUF_ROOT
// in a temporary directory.
package cosigncli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// Version is the cosign version test/e2e/deps/build.sh builds.
const Version = "v2.6.5"

// Password is the password of the keys KeyPair makes.
const Password = "ballast-test"

// CLI runs one cosign binary.
type CLI struct {
	Path string
	home string
}

// Find locates cosign or calls realtest.Missing.
func Find(tb testing.TB) *CLI {
	tb.Helper()
	p := os.Getenv("BALLAST_COSIGN")
	if p == "" {
		cache := os.Getenv("BALLAST_E2E_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				tb.Fatal(err)
			}
			cache = filepath.Join(home, ".cache", "ballast", "e2e")
		}
		p = filepath.Join(cache, "cosign-"+Version, "cosign")
	}
	if _, err := os.Stat(p); err != nil {
		realtest.Missing(tb, "cosign "+Version+" ("+p+")", "test/e2e/deps/build.sh cosign builds it, or set BALLAST_COSIGN")
	}
	return &CLI{Path: p, home: tb.TempDir()}
}

// Run runs cosign with args and returns its combined output.
func (c *CLI) Run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Dir = c.home
	cmd.Env = []string{
		"HOME=" + c.home,
		"PATH=/usr/bin:/bin",
		"TUF_ROOT=" + filepath.Join(c.home, "tuf"),
		"COSIGN_PASSWORD=" + Password,
		"COSIGN_YES=true",
		"DOCKER_CONFIG=" + filepath.Join(c.home, "docker"),
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cosign %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// KeyPair runs `cosign generate-key-pair` in a new directory and returns
// the paths of cosign.key (encrypted with Password) and cosign.pub.
func (c *CLI) KeyPair(tb testing.TB) (key, pub string) {
	tb.Helper()
	dir := tb.TempDir()
	pfx := filepath.Join(dir, "cosign")
	if _, err := c.Run(context.Background(), "generate-key-pair", "--output-key-prefix", pfx); err != nil {
		tb.Fatal(err)
	}
	return pfx + ".key", pfx + ".pub"
}

// offline are the flags that keep signing and verifying off the network
// and on plain HTTP.
var offline = []string{"--allow-http-registry", "--allow-insecure-registry"}

// Sign signs ref ("host:port/repo@sha256:…") with key, storing the
// signature in the registry by cosign's tag scheme, without a
// transparency log.
func (c *CLI) Sign(ctx context.Context, key, ref string) error {
	_, err := c.Run(ctx, append(append([]string{"sign", "--key", key, "--tlog-upload=false"}, offline...), ref)...)
	return err
}

// Attest attaches an in-toto attestation of predicate type "custom" with
// the given predicate file to ref (tag sha256-<hex>.att).
func (c *CLI) Attest(ctx context.Context, key, predicate, ref string) error {
	_, err := c.Run(ctx, append(append([]string{"attest", "--key", key, "--tlog-upload=false", "--type", "custom", "--predicate", predicate}, offline...), ref)...)
	return err
}

// AttachSBOM attaches an SPDX SBOM file to ref (tag sha256-<hex>.sbom).
func (c *CLI) AttachSBOM(ctx context.Context, sbom, ref string) error {
	_, err := c.Run(ctx, append(append([]string{"attach", "sbom", "--sbom", sbom, "--type", "spdx"}, offline...), ref)...)
	return err
}

// Verify runs `cosign verify --key pub` on ref without a transparency
// log and returns its output; an error means cosign refused.
func (c *CLI) Verify(ctx context.Context, pub, ref string) (string, error) {
	return c.Run(ctx, append(append([]string{"verify", "--key", pub, "--insecure-ignore-tlog=true"}, offline...), ref)...)
}

// VerifyAttestation runs `cosign verify-attestation --key pub --type custom`.
func (c *CLI) VerifyAttestation(ctx context.Context, pub, ref string) (string, error) {
	return c.Run(ctx, append(append([]string{"verify-attestation", "--key", pub, "--type", "custom", "--insecure-ignore-tlog=true"}, offline...), ref)...)
}
