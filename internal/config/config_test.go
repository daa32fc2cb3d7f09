package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const full = `
dataDir: /var/lib/ballast
listen:
  http: ":8080"
  registry: "127.0.0.1:5000"
repositories:
  - url: https://github.com/fleet/apps.git
    credentials: {usernameFile: u, passwordFile: p}
    pollInterval: 30s
    bundles: registry.example.com/fleet/apps-bundles
    track: ["refs/heads/main", "refs/tags/v1"]
    keepRevisions: 3
    gate: true
registry:
  writeCredentialsFile: ""
upstreamRegistries:
  registry.example.com: {usernameFile: u, passwordFile: p, insecure: true}
platforms: [linux/arm64, linux/arm/v7]
link:
  maxBandwidth: 1000000
`

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Repositories[0]
	if r.PollInterval.Duration != 30*time.Second || r.KeepRevisions != 3 || !r.Gate || len(r.Track) != 2 {
		t.Fatalf("repository parsed wrong: %+v", r)
	}
	if !c.UpstreamRegistries["registry.example.com"].Insecure || c.Link.MaxBandwidth != 1000000 {
		t.Fatalf("parsed wrong: %+v", c)
	}
	if got, ok := c.Repository("GitHub.com/Fleet/Apps"); !ok || got.URL != r.URL {
		t.Fatalf("Repository lookup failed")
	}
	if c.CredentialsFile() != "/var/lib/ballast/registry-credentials" {
		t.Fatalf("CredentialsFile = %q", c.CredentialsFile())
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("dataDir: /d\nrepositories:\n- url: http://127.0.0.1:3000/a/b.git\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Repositories[0]
	if c.Listen.HTTP != ":8080" || c.Listen.Registry != ":5000" || r.PollInterval.Duration != time.Minute ||
		r.KeepRevisions != 5 || r.Track[0] != "refs/heads/main" {
		t.Fatalf("defaults wrong: %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"", "empty config"},
		{"dataDir: [", "parse"},
		{"dataDir: /d\nbogus: 1", `unknown field "bogus"`},
		{"listen: {http: ':1'}", "dataDir: required"},
		{"dataDir: /d\nlisten: {http: 'nope'}", "listen.http"},
		{"dataDir: /d\nlisten: {http: ':5000'}", "both use"},
		{"dataDir: /d\nrepositories: [{url: 'file:///etc'}]", "scheme"},
		{"dataDir: /d\nrepositories: [{url: 'ext::sh -c x'}]", "repositories[0].url"},
		{"dataDir: /d\nrepositories: [{url: '-uhttp://x/y'}]", "not a URL"},
		{"dataDir: /d\nrepositories: [{url: 'https://u:secret@h/a'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a'}, {url: 'https://H/a.git'}]", "listed twice"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', pollInterval: 10}]", "duration"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', pollInterval: 1ms}]", "below 1s"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', track: [main]}]", "full ref name"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', gate: true}]", "needs bundles"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', bundles: 'Bad Name'}]", "bundles"},
		{"dataDir: /d\nplatforms: [linux]", "os/arch"},
		{"dataDir: /d\nlink: {maxBandwidth: -1}", "negative"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.doc, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a credential: %v", err)
		}
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(p, []byte("dataDir: data\nrepositories: [{url: 'https://h/a', credentials: {usernameFile: u, passwordFile: p}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "data") || c.Repositories[0].Credentials.PasswordFile != filepath.Join(dir, "p") {
		t.Fatalf("paths not resolved: %+v", c)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("dataDir: /d\nrepositories: [{url: 'https://h/a'}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c.DataDir == "" {
			t.Fatal("accepted a config without dataDir")
		}
	})
}
