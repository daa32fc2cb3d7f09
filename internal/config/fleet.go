package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/trust"
)

// Fleet configures publishing this site's status document to the hub
// (docs/fleet.md). Absent: the site publishes nothing.
type Fleet struct {
	// Site names this site: one repository path component (lowercase
	// letters, digits, inner . _ -; at most 63 characters).
	Site string `json:"site"`
	// Repository is the sites' parent repository, "registry[:port]/path";
	// this site writes Repository/Site:latest. Plain HTTP when the
	// registry host is listed in upstreamRegistries with insecure: true.
	Repository string `json:"repository"`
	// UsernameFile and PasswordFile hold the write credential, one that
	// may write Repository/Site only. Both empty: anonymous.
	UsernameFile string `json:"usernameFile,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// Interval is how often the edge looks whether its status changed
	// (free: nothing is sent unless it did). Default 5m, at least 1s.
	Interval Duration `json:"interval,omitempty"`
	// Heartbeat is how often an unchanged status is re-published (one
	// manifest, about 1 KB on the wire). Default 2h, at least Interval.
	Heartbeat Duration `json:"heartbeat,omitempty"`
	// SignKey is a cosign private key file (`cosign generate-key-pair`:
	// "ENCRYPTED SIGSTORE PRIVATE KEY", or an unencrypted PKCS#8/EC/PKCS#1
	// PEM key) with which every published document is signed, in cosign's
	// format (docs/fleet.md "Signed documents"). Empty: documents are
	// published unsigned.
	SignKey string `json:"signKey,omitempty"`
	// SignPasswordFile holds the password of an encrypted SignKey (the
	// file's content without its final line ending). Empty: the password
	// comes from the COSIGN_PASSWORD environment variable, as cosign takes
	// it.
	SignPasswordFile string `json:"signPasswordFile,omitempty"`

	signer *trust.Signer
}

// Signer is the loaded SignKey (set by Load; LoadSigner for a config built
// another way); nil when documents are published unsigned.
func (f *Fleet) Signer() *trust.Signer { return f.signer }

// LoadSigner reads SignKey with its password (SignPasswordFile, else
// $COSIGN_PASSWORD). Errors name the field and the file.
func (f *Fleet) LoadSigner() error {
	if f.SignKey == "" {
		return nil
	}
	raw, err := readBounded(f.SignKey, maxKeyFile)
	if err != nil {
		return fmt.Errorf("fleet.signKey: %w", err)
	}
	var pw []byte
	switch {
	case f.SignPasswordFile != "":
		b, err := readBounded(f.SignPasswordFile, maxKeyFile)
		if err != nil {
			return fmt.Errorf("fleet.signPasswordFile: %w", err)
		}
		pw = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
	default:
		env, ok := os.LookupEnv("COSIGN_PASSWORD")
		if !ok && bytes.Contains(raw, []byte("ENCRYPTED")) {
			return fmt.Errorf("fleet.signKey: %s is encrypted; set fleet.signPasswordFile (or COSIGN_PASSWORD)", f.SignKey)
		}
		pw = []byte(env)
	}
	s, err := trust.LoadSigner(raw, pw)
	if err != nil {
		if f.SignPasswordFile != "" {
			return fmt.Errorf("fleet.signKey: %s (password from fleet.signPasswordFile): %w", f.SignKey, err)
		}
		return fmt.Errorf("fleet.signKey: %s: %w", f.SignKey, err)
	}
	f.signer = s
	return nil
}

// Fleet defaults.
const (
	DefaultFleetInterval  = 5 * time.Minute
	DefaultFleetHeartbeat = 2 * time.Hour
)

var fleetSite = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// SiteRepository is the repository this site publishes to.
func (f *Fleet) SiteRepository() string {
	return strings.TrimSuffix(f.Repository, "/") + "/" + f.Site
}

func (f *Fleet) applyDefaults() {
	if f.Interval.Duration == 0 {
		f.Interval.Duration = DefaultFleetInterval
	}
	if f.Heartbeat.Duration == 0 {
		f.Heartbeat.Duration = DefaultFleetHeartbeat
	}
}

func (f *Fleet) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if f.Site == "" {
		bad("fleet.site: required")
	} else if len(f.Site) > 63 || !fleetSite.MatchString(f.Site) {
		bad("fleet.site: %q is not a site name (lowercase letters, digits, inner . _ -; at most 63 characters)", f.Site)
	}
	if f.Repository == "" {
		bad("fleet.repository: required")
	} else if err := validateRepository(f.Repository); err != nil {
		bad("fleet.repository: %v", err)
	} else if f.Site != "" {
		if err := validateRepository(f.SiteRepository()); err != nil {
			bad("fleet.repository: with the site: %v", err)
		}
	}
	if (f.UsernameFile == "") != (f.PasswordFile == "") {
		bad("fleet: usernameFile and passwordFile go together")
	}
	if f.Interval.Duration < time.Second {
		bad("fleet.interval: %v is below 1s", f.Interval)
	}
	if f.Heartbeat.Duration < f.Interval.Duration {
		bad("fleet.heartbeat: %v is below fleet.interval (%v)", f.Heartbeat, f.Interval)
	}
	if f.SignPasswordFile != "" && f.SignKey == "" {
		bad("fleet.signPasswordFile: needs fleet.signKey")
	}
	return errors.Join(errs...)
}
