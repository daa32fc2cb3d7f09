package config

import (
	"net/url"
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
		{"dataDir: /d\nrepositories: [{url: 'ssh://git:secret@h/a'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'ssh://:secret@h/a'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'http://tok_secret@h/a'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'git://u:secret@h/a'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'ftp://u:secret@h/a'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'u:secret@h:a/b.git'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: 'https://u:secret@h/%zz'}]", "credential files"},
		{"dataDir: /d\nrepositories: [{url: \"https://h/a\\x07b\"}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: \"https://h/a\\u0085b\"}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: \"https://h/a\\x7f\"}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: \"https://h/a\\tb\"}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: \"https://h/a\\nb\"}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a%0ab'}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a%00/b'}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a%7f'}]", "control character"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a%5cb'}]", "backslash"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a?'}]", "query"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a'}, {url: 'https://H/a.git'}]", "listed twice"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', pollInterval: 10}]", "duration"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', pollInterval: 1ms}]", "below 1s"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', track: [main]}]", "full ref name"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', gate: true}]", "needs bundles"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/~user/a', bundles: r.example.com/b}]", "repositories[0].url: git URL \"https://h/~user/a\": path component \"~user\""},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', bundles: 'Bad Name'}]", "bundles"},
		{"dataDir: /d\nupstreamRegistries: {\"reg\\nistry.example.com\": {}}", "upstreamRegistries"},
		{"dataDir: /d\nupstreamRegistries: {\"a\\u0085b\": {}}", "upstreamRegistries"},
		{"dataDir: /d\nupstreamRegistries: {'..': {}}", "upstreamRegistries"},
		{"dataDir: /d\nupstreamRegistries: {'a\\b': {}}", "upstreamRegistries"},
		{"dataDir: /d\nupstreamRegistries: {'r.example.com:99999': {}}", "upstreamRegistries"},
		{"dataDir: /d\nupstreamRegistries: {'r.example.com:': {}}", "upstreamRegistries"},
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

// TestSSHUserAllowed: an ssh user name alone is an account, not a secret.
// TestUpstreamRegistryHostsAllowed: the host[:port] shapes a registry has.
func TestUpstreamRegistryHostsAllowed(t *testing.T) {
	for _, h := range []string{"registry.example.com", "localhost:5000", "127.0.0.1:5000", "[::1]:5000", "Reg-1.example.com:443", "docker.io"} {
		if _, err := Parse([]byte("dataDir: /d\nupstreamRegistries: {'" + h + "': {insecure: true}}")); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}

func TestSSHUserAllowed(t *testing.T) {
	if _, err := Parse([]byte("dataDir: /d\nrepositories: [{url: 'ssh://git@h:22/a/b.git'}]")); err != nil {
		t.Fatal(err)
	}
}

// FuzzValidateGitURL: an accepted URL has no password, no http(s) user, no
// control character; a refused one's error never quotes a password.
func FuzzValidateGitURL(f *testing.F) {
	for _, s := range []string{"https://h/a.git", "ssh://git@h/a", "ssh://u:pw@h/a", "https://u:pw@h/%zz", "https://h/a\x00", "u:pw@h:a", "http://h:1/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		_, err := ValidateGitURL(u)
		if err != nil {
			if at := strings.LastIndex(u, "@"); at > 0 {
				if i := strings.Index(u, "://"); i >= 0 && i < at {
					info := u[i+3 : at]
					if _, pw, ok := strings.Cut(info, ":"); ok && len(pw) >= 4 && !strings.ContainsAny(info, "/?# ") &&
						strings.IndexFunc(info, isControl) < 0 && strings.Contains(err.Error(), pw) && !strings.Contains(u[:i+3]+u[at:], pw) {
						t.Fatalf("error for %q quotes the password: %v", u, err)
					}
				}
			}
			return
		}
		if strings.IndexFunc(u, isControl) >= 0 {
			t.Fatalf("accepted a control character: %q", u)
		}
		p, perr := url.Parse(u)
		if perr != nil {
			t.Fatalf("accepted %q that url.Parse refuses: %v", u, perr)
		}
		if p.User != nil {
			if _, has := p.User.Password(); has || p.Scheme != "ssh" {
				t.Fatalf("accepted credentials in %q", u)
			}
		}
	})
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
