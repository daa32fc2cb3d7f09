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
	if !c.UpstreamRegistries["registry.example.com"].Insecure || c.Link.MaxBandwidthBytes() != 1000000 {
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
		{"dataDir: /d\nlink: {maxBandwidth: 2MB}", "link.maxBandwidth: \"2MB\": a rate ends in /s"},
		{"dataDir: /d\nlink: {maxBandwidth: 2mb/s}", "link.maxBandwidth: \"2mb\": unknown unit"},
		{"dataDir: /d\nlink: {timeZone: Mars/Base}", "link.timeZone: \"Mars/Base\" is not an IANA"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '6:00'}]}", "link.windows[0].to: \"6:00\" is not a time of day"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '06:00'}, {days: [mon-fry], from: '01:00', to: '02:00'}]}", "link.windows[1].days: \"fry\" is not a day"},
		{"dataDir: /d\nlink: {windows: [{days: [], from: '22:00', to: '06:00'}]}", "link.windows[0].days: empty"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '06:00', timeZone: Local}]}", "link.windows[0].timeZone"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '06:00', maxBandwidth: fast}]}", "link.windows[0].maxBandwidth"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '22:00'}]}", "link.windows[0].to: \"22:00\" equals from"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '06:00', cron: '* * * * *'}]}", "unknown field \"cron\""},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * * mon-fry', duration: 6h}]}", "link.windows[0].schedule: \"0 22 * * mon-fry\" is not a cron expression"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * *', duration: 6h}]}", "link.windows[0].schedule"},
		{"dataDir: /d\nlink: {windows: [{schedule: 'TZ=UTC 0 22 * * *', duration: 6h}]}", "link.windows[0].schedule: \"TZ=UTC 0 22 * * *\": name the zone in timeZone"},
		{"dataDir: /d\nlink: {windows: [{schedule: '@every 1h', duration: 6h}]}", "link.windows[0].schedule: \"@every 1h\": @every has no fixed start"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 0 30 2 *', duration: 6h}]}", "link.windows[0].schedule: \"0 0 30 2 *\" never fires"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * * *'}]}", "link.windows[0].duration: required"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * * *', duration: 6}]}", "link.windows[0].duration: \"6\" is not a duration"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * * *', duration: 200h}]}", "link.windows[0].duration: 200h is outside"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * * *', duration: 6h, from: '22:00'}]}", "link.windows[0].schedule: a window has either"},
		{"dataDir: /d\nlink: {windows: [{from: '22:00', to: '06:00', duration: 6h}]}", "link.windows[0].duration: only with schedule"},
		{"dataDir: /d\nlink: {windows: [{schedule: '0 22 * * *', duration: 6h, timeZone: Local}]}", "link.windows[0].timeZone"},
		{"dataDir: /d\nlink: {budget: {perDay: 5 apples}}", "link.budget.perDay: \"5 apples\": unknown unit"},
		{"dataDir: /d\nlink: {budget: {perMonth: 0}}", "link.budget.perMonth: 0 would allow nothing"},
		{"dataDir: /d\nlink: {budget: {perWeek: 1.5B}}", "link.budget.perWeek: \"1.5B\": not a whole number"},
		{"dataDir: /d\nlink: {budget: {}}", "link.budget: set perDay"},
		{"dataDir: /d\nlink: {budget: {perYear: 1GB}}", "unknown field \"perYear\""},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', weight: 1001}]", "repositories[0].weight: 1001"},
		{"dataDir: /d\nrepositories: [{url: 'https://h/a', weight: -2}]", "repositories[0].weight: -2"},
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

// TestValidateGitURLErrorsHideUserinfo: every refusal path (control
// character, leading '-', space, password, unparsable, bad scheme, query,
// escaped control character) masks the userinfo, whether or not the scheme
// is well formed or the URL parses (stop 20's fuzz input " ://:0000@").
func TestValidateGitURLErrorsHideUserinfo(t *testing.T) {
	for _, u := range []string{
		" ://:secret@",
		"://:secret@h/a",
		"-https://u:secret@h/a",
		"https://u:secret@h/a b",
		"https://u:secret@h/a\x01",
		"https://a\"secret@h/a b",
		"https://a\"b:secret@h/a",
		"1http://u:secret@h a",
		"https://tok_secret@h/%zz",
		"https://tok_secret@h:port/a",
		"ftp://tok_secret@h/a",
		"https://tok_secret@h/a?x",
		"https://tok_secret@h/a%01",
		"https://tok_secret@h/a%5C",
		"u:secret@h a",
		"ssh://tok_secret@",
		"ssh://tok_secret@/a",
		"ssh://tok_secret@h",
	} {
		_, err := ValidateGitURL(u)
		if err == nil {
			t.Errorf("ValidateGitURL(%q) accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ValidateGitURL(%q): error quotes the userinfo: %v", u, err)
		}
	}
}

// FuzzValidateGitURL: an accepted URL has no password, no http(s) user, no
// control character; a refused one's error never quotes its userinfo (a
// password, or a user name that may be a token).
func FuzzValidateGitURL(f *testing.F) {
	for _, s := range []string{"https://h/a.git", "ssh://git@h/a", "ssh://u:pw@h/a", "https://u:pw@h/%zz", "https://h/a\x00", "u:pw@h:a", "http://h:1/a", " ://:0000@", "-https://tok_en@h/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		_, err := ValidateGitURL(u)
		if err != nil {
			if i := strings.Index(u, "://"); i >= 0 {
				rest := u[i+3:]
				if k := strings.IndexAny(rest, "/?#"); k >= 0 {
					rest = rest[:k]
				}
				if at := strings.LastIndex(rest, "@"); at >= 4 {
					info := rest[:at]
					// Quoted as userinfo: followed by its '@', or long enough
					// not to be other text ("0000" is also in "U+0000").
					quoted := strings.Contains(err.Error(), info+"@") || len(info) >= 8 && strings.Contains(err.Error(), info)
					if outside := u[:i+3] + u[i+3+at:]; !strings.Contains(outside, info) && quoted {
						t.Fatalf("error for %q quotes the userinfo %q: %v", u, info, err)
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
	f.Add([]byte("dataDir: /d\nlink: {timeZone: Europe/Oslo, maxBandwidth: 2MB/s, windows: [{days: [mon-fri], from: '22:00', to: '06:00', maxBandwidth: 512kbit/s}], budget: {perDay: 500MB}}"))
	f.Add([]byte("dataDir: /d\nlink: {timeZone: Europe/Oslo, windows: [{schedule: '0 22 * * mon-fri', duration: 6h, maxBandwidth: 1MB/s}, {schedule: '@monthly', duration: 4h, timeZone: UTC}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c.DataDir == "" {
			t.Fatal("accepted a config without dataDir")
		}
		if err == nil {
			// What Validate accepted, the link policy can build.
			if _, err := c.Link.Schedule(); err != nil {
				t.Fatalf("valid config, bad schedule: %v", err)
			}
			if b, err := c.Link.BudgetLimits(); err != nil && c.Link.Budget != nil || err == nil && b.Day < 0 {
				t.Fatalf("valid config, bad budget: %v", err)
			}
		}
	})
}

func TestParseLink(t *testing.T) {
	c, err := Parse([]byte(`dataDir: /d
repositories: [{url: 'https://h/a', weight: 5}, {url: 'https://h/b'}]
link:
  maxBandwidth: 5MB/s
  timeZone: Europe/Oslo
  windows:
    - {days: [mon-fri], from: "22:00", to: "06:00", maxBandwidth: 2MB/s}
    - {days: [sat, sun], from: "00:00", to: "24:00", timeZone: UTC}
  budget: {perDay: 500MB, perMonth: 10GiB}
  gitPollOutsideWindows: false
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Repositories[0].Weight != 5 || c.Repositories[1].Weight != 1 {
		t.Errorf("weights %d %d", c.Repositories[0].Weight, c.Repositories[1].Weight)
	}
	if c.Link.MaxBandwidthBytes() != 5_000_000 || c.Link.PollOutsideWindows() {
		t.Errorf("link %+v", c.Link)
	}
	s, err := c.Link.Schedule()
	if err != nil || s.Always() {
		t.Fatalf("schedule: %v", err)
	}
	oslo, _ := time.LoadLocation("Europe/Oslo")
	st := s.At(time.Date(2026, 12, 7, 23, 0, 0, 0, oslo)) // a Monday night
	if !st.Open || st.Rate != 2_000_000 {
		t.Errorf("monday 23:00: %+v", st)
	}
	b, err := c.Link.BudgetLimits()
	if err != nil || b.Day != 500_000_000 || b.Month != 10<<30 || b.Week != 0 || b.Loc.String() != "Europe/Oslo" {
		t.Errorf("budget %+v %v", b, err)
	}
	d, err := Parse([]byte("dataDir: /d\n"))
	if err != nil || !d.Link.PollOutsideWindows() {
		t.Fatalf("default gitPollOutsideWindows: %v", err)
	}
	if s, _ := d.Link.Schedule(); !s.Always() {
		t.Error("no windows is not always open")
	}
}
