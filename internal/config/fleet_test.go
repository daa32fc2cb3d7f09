package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func TestFleetSection(t *testing.T) {
	base := "dataDir: /d\nrepositories: [{url: https://github.com/fleet/apps.git}]\n"
	c, err := Parse([]byte(base + "fleet: {site: ship-17, repository: registry.example.com/fleet/sites, usernameFile: u, passwordFile: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Fleet
	if f.Interval.Duration != DefaultFleetInterval || f.Heartbeat.Duration != DefaultFleetHeartbeat ||
		f.SiteRepository() != "registry.example.com/fleet/sites/ship-17" {
		t.Fatalf("fleet %+v", f)
	}
	c.resolvePaths("/etc/ballast")
	if c.Fleet.UsernameFile != filepath.Join("/etc/ballast", "u") {
		t.Errorf("usernameFile not resolved: %q", c.Fleet.UsernameFile)
	}
	if c, _ := Parse([]byte(base)); c.Fleet != nil {
		t.Error("no fleet section, but Fleet is set")
	}
	for _, tc := range []struct{ fleet, want string }{
		{"{repository: r.example.com/sites}", "fleet.site: required"},
		{"{site: Ship_17, repository: r.example.com/sites}", `fleet.site: "Ship_17" is not a site name`},
		{"{site: a/b, repository: r.example.com/sites}", "fleet.site:"},
		{"{site: s}", "fleet.repository: required"},
		{"{site: s, repository: r.example.com/sites:latest}", "fleet.repository:"},
		{"{site: s, repository: r.example.com/Sites}", "fleet.repository:"},
		{"{site: s, repository: r.example.com/sites, usernameFile: u}", "fleet: usernameFile and passwordFile go together"},
		{"{site: s, repository: r.example.com/sites, interval: 10ms}", "fleet.interval: 10ms is below 1s"},
		{"{site: s, repository: r.example.com/sites, interval: 1h, heartbeat: 30m}", "fleet.heartbeat: 30m0s is below fleet.interval"},
		{"{site: s, repository: r.example.com/sites, every: 1h}", `unknown field "every"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(base + "fleet: " + tc.fleet + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestFleetSignKey: fleet.signKey is loaded when the config is read, with
// its password from fleet.signPasswordFile or COSIGN_PASSWORD; every
// failure names the field.
func TestFleetSignKey(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(k, cryptoutils.StaticPasswordFunc([]byte("s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("site.key", string(pem.EncodeToMemory(&pem.Block{Type: string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), Bytes: der})))
	write("pw", "s3cret\n")
	write("bad-pw", "wrong\n")
	write("garbage.key", "not a key")
	base := "dataDir: /d\nrepositories: [{url: https://github.com/fleet/apps.git}]\nfleet: {site: ship-17, repository: registry.example.com/fleet/sites"
	load := func(extra string) (*Config, error) {
		return Load(write("edge.yaml", base+extra+"}\n"))
	}
	t.Setenv("COSIGN_PASSWORD", "")
	os.Unsetenv("COSIGN_PASSWORD")
	c, err := load(", signKey: site.key, signPasswordFile: pw")
	if err != nil || c.Fleet.Signer() == nil {
		t.Fatalf("a good key: %v", err)
	}
	if c, err := load(""); err != nil || c.Fleet.Signer() != nil {
		t.Fatalf("no signKey: %v, signer %v", err, c.Fleet.Signer())
	}
	for _, tc := range []struct{ extra, want string }{
		{", signKey: nope.key", "fleet.signKey: open"},
		{", signKey: site.key", "fleet.signKey: " + filepath.Join(dir, "site.key") + " is encrypted; set fleet.signPasswordFile"},
		{", signKey: site.key, signPasswordFile: bad-pw", "fleet.signKey: " + filepath.Join(dir, "site.key") + " (password from fleet.signPasswordFile)"},
		{", signKey: site.key, signPasswordFile: nope", "fleet.signPasswordFile: open"},
		{", signKey: garbage.key", "fleet.signKey: "},
		{", signPasswordFile: pw", "fleet.signPasswordFile: needs fleet.signKey"},
	} {
		if _, err := load(tc.extra); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.extra, err, tc.want)
		}
	}
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	if c, err := load(", signKey: site.key"); err != nil || c.Fleet.Signer() == nil {
		t.Fatalf("password from COSIGN_PASSWORD: %v", err)
	}
}
