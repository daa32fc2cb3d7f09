// Package config reads and validates the edge configuration
// (`ballast edge --config edge.yaml`, DESIGN.md "Edge config").
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/redact"
	"github.com/ballast-dev/ballast/internal/units"
)

// Defaults applied by Parse to fields left empty.
const (
	DefaultHTTPListen     = ":8080"
	DefaultRegistryListen = ":5000"
	DefaultPollInterval   = time.Minute
	DefaultKeepRevisions  = 5
	DefaultTrack          = "refs/heads/main"
)

// Config is the edge daemon's configuration.
type Config struct {
	DataDir            string                      `json:"dataDir"`
	Listen             Listen                      `json:"listen"`
	Repositories       []Repository                `json:"repositories"`
	Registry           Registry                    `json:"registry"`
	UpstreamRegistries map[string]UpstreamRegistry `json:"upstreamRegistries,omitempty"`
	Platforms          []string                    `json:"platforms,omitempty"`
	Link               Link                        `json:"link"`
	API                API                         `json:"api,omitempty"`
	// Fleet, when set, publishes this site's status to the hub (fleet.go).
	Fleet *Fleet `json:"fleet,omitempty"`
	// Trust, when set, checks bundle (and optionally image) signatures
	// before anything of a bundle becomes visible (trust.go).
	Trust *Trust `json:"trust,omitempty"`
}

// API configures who may change state through the daemon's HTTP API.
type API struct {
	// TokenFile holds the bearer token that state-changing API routes
	// (activate, verification reports) require: one line, 32 to 512
	// printable ASCII characters. Empty means <dataDir>/api-token,
	// generated at first start (mode 0600).
	TokenFile string `json:"tokenFile,omitempty"`
	// AllowedHosts are extra host names (no port) that state-changing
	// requests may carry in their Host header, besides IP literals,
	// "localhost", single-label names and Kubernetes service names
	// (*.svc, *.svc.cluster.local). Anything else is refused, so a web page
	// served from a name the attacker controls (DNS rebinding) cannot
	// drive the API.
	AllowedHosts []string `json:"allowedHosts,omitempty"`
}

// Listen holds the listener addresses.
type Listen struct {
	HTTP     string `json:"http"`
	Registry string `json:"registry"`
}

// Repository is one upstream git repository mirrored at the edge.
type Repository struct {
	URL           string       `json:"url"`
	Credentials   *Credentials `json:"credentials,omitempty"`
	PollInterval  Duration     `json:"pollInterval"`
	Bundles       string       `json:"bundles,omitempty"`
	Track         []string     `json:"track,omitempty"`
	KeepRevisions int          `json:"keepRevisions"`
	Gate          bool         `json:"gate,omitempty"`
	// Weight orders fetches between repositories when the link is scarce:
	// within a priority tier, heavier repositories go first. 1 to 1000;
	// the default is 1.
	Weight int `json:"weight,omitempty"`
}

// Credentials name files holding a username and a password (or token).
type Credentials struct {
	UsernameFile string `json:"usernameFile"`
	PasswordFile string `json:"passwordFile"`
}

// Registry configures the edge registry.
type Registry struct {
	// WriteCredentialsFile holds one line "user:password". Empty means
	// <dataDir>/registry-credentials, generated at first start.
	WriteCredentialsFile string `json:"writeCredentialsFile,omitempty"`
}

// UpstreamRegistry configures access to one upstream registry host.
type UpstreamRegistry struct {
	UsernameFile string `json:"usernameFile,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	Insecure     bool   `json:"insecure,omitempty"` // plain HTTP
}

// Link describes the edge's upstream link and when and how much sync may
// use it (docs/configuration.md, "The link").
type Link struct {
	// MaxBandwidth caps bundle downloads: bytes/s as a number, or a
	// string with a unit ("2MB/s", "512kbit/s"); 0 = unlimited.
	MaxBandwidth Quantity `json:"maxBandwidth,omitempty"`
	// TimeZone is the IANA zone of windows that name none and of budget
	// periods. The default is UTC.
	TimeZone string `json:"timeZone,omitempty"`
	// Windows are when sync may use the link; none means always.
	Windows []Window `json:"windows,omitempty"`
	// Budget caps the bytes sync may move per day, week and month.
	Budget *Budget `json:"budget,omitempty"`
	// GitPollOutsideWindows lets the git mirror poll upstream while no
	// window is open (polls are small). The default is true.
	GitPollOutsideWindows *bool `json:"gitPollOutsideWindows,omitempty"`
}

// Window is one transfer window, in one of two forms: weekly
// (linkplan.ParseWindow: opens at From on each of Days and closes at To)
// or cron (linkplan.ParseCronWindow: opens whenever Schedule matches and
// stays open for Duration).
type Window struct {
	Days         []string `json:"days,omitempty"`     // "mon"…"sun", "mon-fri"; absent: every day
	From         string   `json:"from,omitempty"`     // "HH:MM"
	To           string   `json:"to,omitempty"`       // "HH:MM" or "24:00"; ≤ from: the next day
	Schedule     string   `json:"schedule,omitempty"` // cron form: "0 22 * * mon-fri"
	Duration     string   `json:"duration,omitempty"` // cron form: "6h"
	TimeZone     string   `json:"timeZone,omitempty"`
	MaxBandwidth Quantity `json:"maxBandwidth,omitempty"` // cap while open; absent: the link's
}

// Budget is the most sync may move over the link per period ("500MB",
// "2GiB"); absent periods are unlimited. Periods start at midnight in
// link.timeZone: days every day, weeks on Monday, months on the 1st.
type Budget struct {
	PerDay   Quantity `json:"perDay,omitempty"`
	PerWeek  Quantity `json:"perWeek,omitempty"`
	PerMonth Quantity `json:"perMonth,omitempty"`
}

// Quantity is a byte count or rate as written in the config: a number, or
// a string with a unit (units.ParseBytes, units.ParseRate). Validate
// parses it, naming the field.
type Quantity string

// UnmarshalJSON accepts a JSON number or string.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*q = Quantity(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%s: want a number or a string such as \"2MB/s\"", b)
	}
	*q = Quantity(n.String())
	return nil
}

// Bytes parses q as a byte count; empty is 0.
func (q Quantity) Bytes() (int64, error) {
	if q == "" {
		return 0, nil
	}
	if strings.HasPrefix(strings.TrimSpace(string(q)), "-") {
		return 0, fmt.Errorf("%s is negative", q)
	}
	return units.ParseBytes(string(q))
}

// Rate parses q as bytes per second; empty is 0.
func (q Quantity) Rate() (int64, error) {
	if q == "" {
		return 0, nil
	}
	if strings.HasPrefix(strings.TrimSpace(string(q)), "-") {
		return 0, fmt.Errorf("%s is negative", q)
	}
	return units.ParseRate(string(q))
}

// MaxBandwidthBytes is link.maxBandwidth in bytes/s (0 when unset or
// invalid: Validate reports the latter).
func (l Link) MaxBandwidthBytes() int64 {
	n, _ := l.MaxBandwidth.Rate()
	return n
}

// Schedule builds the link's window schedule.
func (l Link) Schedule() (linkplan.Schedule, error) {
	rate, err := l.MaxBandwidth.Rate()
	if err != nil {
		return linkplan.Schedule{}, fmt.Errorf("link.maxBandwidth: %w", err)
	}
	ws := make([]linkplan.Window, 0, len(l.Windows))
	for i, w := range l.Windows {
		var pw linkplan.Window
		var err error
		switch {
		case w.Schedule != "" && (w.Days != nil || w.From != "" || w.To != ""):
			return linkplan.Schedule{}, fmt.Errorf("link.windows[%d].schedule: a window has either schedule and duration or days, from and to, not both", i)
		case w.Schedule != "":
			pw, err = linkplan.ParseCronWindow(w.Schedule, w.Duration, w.TimeZone, l.TimeZone)
		case w.Duration != "":
			return linkplan.Schedule{}, fmt.Errorf("link.windows[%d].duration: only with schedule (the weekly form closes at to)", i)
		default:
			pw, err = linkplan.ParseWindow(w.Days, w.From, w.To, w.TimeZone, l.TimeZone)
		}
		if err != nil {
			return linkplan.Schedule{}, fmt.Errorf("link.windows[%d].%w", i, err)
		}
		if pw.Rate, err = w.MaxBandwidth.Rate(); err != nil {
			return linkplan.Schedule{}, fmt.Errorf("link.windows[%d].maxBandwidth: %w", i, err)
		}
		ws = append(ws, pw)
	}
	return linkplan.NewSchedule(rate, ws...), nil
}

// BudgetLimits builds the link's budget (zero: none).
func (l Link) BudgetLimits() (linkplan.Budget, error) {
	loc, err := linkplan.LoadZone(l.TimeZone)
	if err != nil {
		return linkplan.Budget{}, fmt.Errorf("link.timeZone: %w", err)
	}
	b := linkplan.Budget{Loc: loc}
	if l.Budget == nil {
		return b, nil
	}
	for _, f := range []struct {
		key string
		q   Quantity
		dst *int64
	}{{"perDay", l.Budget.PerDay, &b.Day}, {"perWeek", l.Budget.PerWeek, &b.Week}, {"perMonth", l.Budget.PerMonth, &b.Month}} {
		n, err := f.q.Bytes()
		if err == nil && f.q != "" && n == 0 {
			err = errors.New("0 would allow nothing: leave the period out for no limit")
		}
		if err != nil {
			return b, fmt.Errorf("link.budget.%s: %w", f.key, err)
		}
		*f.dst = n
	}
	if b.IsZero() {
		return b, errors.New("link.budget: set perDay, perWeek or perMonth (or leave budget out)")
	}
	return b, nil
}

// PollOutsideWindows is link.gitPollOutsideWindows with its default.
func (l Link) PollOutsideWindows() bool {
	return l.GitPollOutsideWindows == nil || *l.GitPollOutsideWindows
}

// Duration is a time.Duration written as "1m", "30s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if len(b) < 2 || b[0] != '"' {
		return fmt.Errorf("duration %s: want a string such as \"1m\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Load reads, parses and validates the config file at path. Relative paths
// inside it are resolved against the file's directory.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.resolvePaths(filepath.Dir(path))
	if err := c.loadTrustKeys(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.Fleet != nil {
		if err := c.Fleet.LoadSigner(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	return c, nil
}

// Parse parses and validates a config document, applying defaults.
// Unknown keys are errors.
func Parse(b []byte) (*Config, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty config")
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Listen.HTTP == "" {
		c.Listen.HTTP = DefaultHTTPListen
	}
	if c.Listen.Registry == "" {
		c.Listen.Registry = DefaultRegistryListen
	}
	for i := range c.Repositories {
		r := &c.Repositories[i]
		if r.PollInterval.Duration == 0 {
			r.PollInterval.Duration = DefaultPollInterval
		}
		if r.KeepRevisions == 0 {
			r.KeepRevisions = DefaultKeepRevisions
		}
		if r.Weight == 0 {
			r.Weight = 1
		}
		if len(r.Track) == 0 {
			r.Track = []string{DefaultTrack}
		}
	}
	if c.Fleet != nil {
		c.Fleet.applyDefaults()
	}
	if c.Trust != nil {
		c.Trust.applyDefaults()
	}
}

func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	for _, f := range c.FileFields() {
		if !filepath.IsAbs(f.Value) {
			f.Set(filepath.Join(base, f.Value))
		}
	}
}

// FileField is one file an edge config names (a credential, a key).
type FileField struct {
	// Name is the field as errors name it: "trust.publicKeys[0]",
	// "upstreamRegistries[ghcr.io].passwordFile".
	Name string
	// Keys is the field's place in the config document: map keys
	// (string) and list indexes (int), outermost first.
	Keys []any
	// Value is the file's path (relative to the config file until Load
	// resolves it).
	Value string
	// Set replaces the field's value in the Config.
	Set func(path string)
}

// FileFields returns every file-valued field of c that is set, in a fixed
// order (upstream registries by host). It is the one list of such fields:
// Load resolves them, install carries their files into the cluster.
func (c *Config) FileFields() []FileField {
	var out []FileField
	add := func(name string, p *string, keys ...any) {
		if *p != "" {
			out = append(out, FileField{Name: name, Keys: keys, Value: *p, Set: func(v string) { *p = v }})
		}
	}
	add("registry.writeCredentialsFile", &c.Registry.WriteCredentialsFile, "registry", "writeCredentialsFile")
	add("api.tokenFile", &c.API.TokenFile, "api", "tokenFile")
	if f := c.Fleet; f != nil {
		add("fleet.usernameFile", &f.UsernameFile, "fleet", "usernameFile")
		add("fleet.passwordFile", &f.PasswordFile, "fleet", "passwordFile")
		add("fleet.signKey", &f.SignKey, "fleet", "signKey")
		add("fleet.signPasswordFile", &f.SignPasswordFile, "fleet", "signPasswordFile")
	}
	if t := c.Trust; t != nil {
		for i := range t.PublicKeys {
			add(fmt.Sprintf("trust.publicKeys[%d]", i), &t.PublicKeys[i], "trust", "publicKeys", i)
		}
	}
	for i := range c.Repositories {
		if cr := c.Repositories[i].Credentials; cr != nil {
			add(fmt.Sprintf("repositories[%d].credentials.usernameFile", i), &cr.UsernameFile, "repositories", i, "credentials", "usernameFile")
			add(fmt.Sprintf("repositories[%d].credentials.passwordFile", i), &cr.PasswordFile, "repositories", i, "credentials", "passwordFile")
		}
	}
	hosts := make([]string, 0, len(c.UpstreamRegistries))
	for h := range c.UpstreamRegistries {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		for _, f := range []struct {
			key string
			get func(*UpstreamRegistry) *string
		}{
			{"usernameFile", func(u *UpstreamRegistry) *string { return &u.UsernameFile }},
			{"passwordFile", func(u *UpstreamRegistry) *string { return &u.PasswordFile }},
		} {
			u := c.UpstreamRegistries[h]
			if v := *f.get(&u); v != "" {
				out = append(out, FileField{Name: "upstreamRegistries[" + h + "]." + f.key, Keys: []any{"upstreamRegistries", h, f.key}, Value: v,
					Set: func(v string) { u := c.UpstreamRegistries[h]; *f.get(&u) = v; c.UpstreamRegistries[h] = u }})
			}
		}
	}
	return out
}

// Validate checks every field and returns all problems found, one per line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.DataDir == "" {
		bad("dataDir: required")
	}
	for _, l := range []struct{ key, addr string }{{"listen.http", c.Listen.HTTP}, {"listen.registry", c.Listen.Registry}} {
		if _, port, err := net.SplitHostPort(l.addr); err != nil || port == "" {
			bad("%s: %q is not host:port", l.key, l.addr)
		}
	}
	if c.Listen.HTTP == c.Listen.Registry && !strings.HasSuffix(c.Listen.HTTP, ":0") {
		bad("listen: http and registry both use %q", c.Listen.HTTP)
	}
	seen := map[string]bool{}
	for i, r := range c.Repositories {
		key := fmt.Sprintf("repositories[%d]", i)
		id, err := ValidateGitURL(r.URL)
		if err != nil {
			bad("%s.url: %v", key, err)
		} else if seen[strings.ToLower(id)] {
			bad("%s.url: %q is listed twice", key, r.URL)
		} else {
			seen[strings.ToLower(id)] = true
		}
		if r.PollInterval.Duration < time.Second {
			bad("%s.pollInterval: %v is below 1s", key, r.PollInterval)
		}
		if r.Weight < 0 || r.Weight > 1000 {
			bad("%s.weight: %d is not between 1 and 1000", key, r.Weight)
		}
		if r.KeepRevisions < 0 {
			bad("%s.keepRevisions: %d is negative", key, r.KeepRevisions)
		}
		if r.Bundles != "" {
			if err := validateRepository(r.Bundles); err != nil {
				bad("%s.bundles: %v", key, err)
			}
			// The edge keeps this repository's bundle indexes under a name
			// derived from its URL: refuse now what every pass would fail on.
			if _, err := imageref.BundleRepository(r.URL); err != nil {
				bad("%s.url: %s", key, redact.Text(err.Error()))
			}
		}
		for _, t := range r.Track {
			if !strings.HasPrefix(t, "refs/heads/") && !strings.HasPrefix(t, "refs/tags/") {
				bad("%s.track: %q is not a full ref name (refs/heads/… or refs/tags/…)", key, t)
			}
		}
		if cr := r.Credentials; cr != nil && (cr.UsernameFile == "") != (cr.PasswordFile == "") {
			bad("%s.credentials: usernameFile and passwordFile go together", key)
		}
		if r.Gate && r.Bundles == "" {
			bad("%s.gate: needs bundles", key)
		}
	}
	for host, u := range c.UpstreamRegistries {
		if !validRegistryHost(host) {
			bad("upstreamRegistries: %q is not a registry host[:port]", host)
		}
		if (u.UsernameFile == "") != (u.PasswordFile == "") {
			bad("upstreamRegistries.%s: usernameFile and passwordFile go together", host)
		}
	}
	for _, p := range c.Platforms {
		if _, err := oci.ParsePlatform(p); err != nil {
			bad("platforms: %v", err)
		}
	}
	for _, h := range c.API.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/@ ") || strings.IndexFunc(h, isControl) >= 0 {
			bad("api.allowedHosts: %q is not a host name (no port)", h)
		}
	}
	if _, err := linkplan.LoadZone(c.Link.TimeZone); err != nil {
		bad("link.timeZone: %v", err)
	} else {
		if _, err := c.Link.Schedule(); err != nil {
			bad("%v", err)
		}
		if _, err := c.Link.BudgetLimits(); err != nil {
			bad("%v", err)
		}
	}
	if c.Fleet != nil {
		if err := c.Fleet.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Trust != nil {
		if err := c.Trust.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ValidateGitURL checks that u is an http(s) or ssh git URL without
// credentials, control characters or option-like text, and returns its
// repository id. A password is refused in every scheme, a user name in
// http(s) (it may be a token); an ssh user name alone ("ssh://git@host/…")
// names an account and is allowed. Errors never quote a credential.
func ValidateGitURL(u string) (string, error) {
	if u == "" {
		return "", errors.New("required")
	}
	if i := strings.IndexFunc(u, isControl); i >= 0 {
		return "", fmt.Errorf("%q: control character or invalid UTF-8 (%U) at byte %d", shownURL(u), []rune(u[i:])[0], i)
	}
	if strings.HasPrefix(u, "-") || strings.ContainsAny(u, " ") {
		return "", fmt.Errorf("%q: not a URL", shownURL(u))
	}
	if hasPassword(u) {
		return "", fmt.Errorf("%q: credentials belong in credential files, not the URL", shownURL(u))
	}
	p, err := url.Parse(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, credentials included
		}
		return "", fmt.Errorf("%q: not a URL: %s", shownURL(u), redact.Text(err.Error()))
	}
	if p.User != nil {
		if _, has := p.User.Password(); has || p.Scheme != "ssh" {
			return "", fmt.Errorf("%q: credentials belong in credential files, not the URL", shownURL(u))
		}
	}
	switch p.Scheme {
	case "http", "https", "ssh":
	default:
		return "", fmt.Errorf("%q: scheme %q not allowed (http, https or ssh)", shownURL(u), p.Scheme)
	}
	if p.RawQuery != "" || p.Fragment != "" || p.ForceQuery {
		return "", fmt.Errorf("%q: query and fragment not allowed", shownURL(u))
	}
	id, err := imageref.RepoID(u)
	if err != nil {
		// RepoID quotes the URL as it is (an ssh user name included).
		return "", errors.New(redact.Text(strings.ReplaceAll(err.Error(), strconv.Quote(u), strconv.Quote(shownURL(u)))))
	}
	// The id is the decoded path: "%0a" or "%5c" becomes a real newline or
	// backslash, which the mirror refuses as a directory name and the
	// /git/ routes would never serve.
	if i := strings.IndexFunc(id, isControl); i >= 0 {
		return "", fmt.Errorf("%q: percent-encoded control character or invalid UTF-8 (%U) in the path", shownURL(u), []rune(id[i:])[0])
	}
	if strings.Contains(id, "\\") {
		return "", fmt.Errorf("%q: percent-encoded backslash in the path", shownURL(u))
	}
	return id, nil
}

// isControl reports a C0 or C1 control character or DEL: never part of a
// URL, and a way to forge log lines or page text.
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f || r == utf8.RuneError }

// hasPassword reports "user:password@" before the host of a URL of any
// scheme, or of an scp-like "user:password@host:path", whether or not the
// rest parses.
func hasPassword(u string) bool {
	start, at, ok := userinfo(u)
	return ok && strings.Contains(u[start:at], ":")
}

// userinfo finds the userinfo of a URL-like string, whether or not it
// parses: it runs from after the first "://" (or the start) to the last '@'
// before the first '/', '?' or '#' after that. ok is false with no '@'.
func userinfo(u string) (start, at int, ok bool) {
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	rest := u[start:]
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return 0, 0, false
	}
	return start, start + i, true
}

// shownURL is u as an error may quote it: any userinfo, in any scheme and
// whether or not u parses, becomes redact.Mask (in an error, a user name
// may be a token), and what redact.Text finds elsewhere too.
func shownURL(u string) string {
	if start, at, ok := userinfo(u); ok {
		u = u[:start] + redact.Mask + u[at:]
	}
	return redact.Text(u)
}

// validateRepository checks a "registry[:port]/path" repository name, with
// no tag or digest.
func validateRepository(s string) error {
	host, path, ok := strings.Cut(s, "/")
	if !ok || strings.ContainsAny(path, "@:") {
		return fmt.Errorf("%q is not a registry/repository without tag or digest", s)
	}
	if _, err := imageref.Parse(host + "/" + path + ":x"); err != nil {
		return fmt.Errorf("%q is not a registry/repository: %w", s, err)
	}
	return nil
}

// Repository returns the configured repository whose URL has the given
// repository id (see imageref.RepoID), comparing case-insensitively.
func (c *Config) Repository(id string) (*Repository, bool) {
	for i := range c.Repositories {
		rid, err := imageref.RepoID(c.Repositories[i].URL)
		if err == nil && strings.EqualFold(rid, id) {
			return &c.Repositories[i], true
		}
	}
	return nil, false
}

// APITokenFile returns the path of the file holding the API token.
func (c *Config) APITokenFile() string {
	if c.API.TokenFile != "" {
		return c.API.TokenFile
	}
	return datadir.Of(c.DataDir).APIToken()
}

// CredentialsFile returns the registry write credentials file path.
func (c *Config) CredentialsFile() string {
	if c.Registry.WriteCredentialsFile != "" {
		return c.Registry.WriteCredentialsFile
	}
	return datadir.Of(c.DataDir).RegistryCredentials()
}

// registryHostName is a registry host name as image references spell it:
// dot-separated labels of letters, digits and inner hyphens.
var registryHostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// validRegistryHost accepts "host", "host:port" and "[ipv6]:port", with a
// port of 1 to 65535: never a control character, a path or "..", which
// would end up in log lines and in install's certs.d directory names.
func validRegistryHost(s string) bool {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return false
		}
		if strings.HasPrefix(s, "[") {
			return net.ParseIP(host) != nil && strings.Contains(host, ":")
		}
	} else if strings.Contains(s, ":") {
		return false
	}
	return registryHostName.MatchString(host)
}
