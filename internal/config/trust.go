package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ballast-dev/ballast/internal/trust"
)

// maxKeyFile bounds a public key file: a PEM public key is well under 4 KiB
// even for RSA-4096.
const maxKeyFile = 64 << 10

// Trust says which signatures the edge requires (docs/trust.md,
// docs/configuration.md "trust").
type Trust struct {
	// PublicKeys are files holding PEM public keys ("PUBLIC KEY", as
	// `cosign generate-key-pair` writes cosign.pub). A signature by any
	// one of them counts, so a key is rotated by listing the old and the
	// new one while bundles signed by either are around. Relative paths
	// are relative to the config file.
	PublicKeys []string `json:"publicKeys"`
	// RequireSignatures refuses a bundle whose index is not signed by one
	// of PublicKeys: it becomes "untrusted" and nothing of it is landed.
	// The default is true. When false, an unsigned bundle is accepted, but
	// a signature that is present and does not verify still refuses it.
	RequireSignatures *bool `json:"requireSignatures,omitempty"`
	// RequireImageSignatures also requires a signature by one of
	// PublicKeys (cosign's sha256-<hex>.sig tag, carried in the bundle) of
	// every image of the bundle. The default is false.
	RequireImageSignatures bool `json:"requireImageSignatures,omitempty"`

	keys []trust.Key
}

func (t *Trust) applyDefaults() {
	if t.RequireSignatures == nil {
		yes := true
		t.RequireSignatures = &yes
	}
}

// SignaturesRequired reports whether unsigned bundles are refused.
func (t *Trust) SignaturesRequired() bool { return t.RequireSignatures == nil || *t.RequireSignatures }

// Keys are the parsed PublicKeys (set by Load; LoadKeys for a config
// built another way).
func (t *Trust) Keys() []trust.Key { return t.keys }

func (t *Trust) validate() error {
	var errs []error
	if len(t.PublicKeys) == 0 {
		errs = append(errs, errors.New("trust.publicKeys: at least one public key file is required"))
	}
	seen := map[string]bool{}
	for i, p := range t.PublicKeys {
		switch {
		case strings.TrimSpace(p) == "":
			errs = append(errs, fmt.Errorf("trust.publicKeys[%d]: empty path", i))
		case seen[p]:
			errs = append(errs, fmt.Errorf("trust.publicKeys[%d]: %q is listed twice", i, p))
		}
		seen[p] = true
	}
	if t.RequireImageSignatures && !t.SignaturesRequired() {
		errs = append(errs, errors.New("trust.requireImageSignatures: needs trust.requireSignatures (image signatures are trusted through the signed bundle index)"))
	}
	return errors.Join(errs...)
}

// LoadKeys reads and parses every public key file. Errors name the field
// and the file.
func (t *Trust) LoadKeys() error {
	var keys []trust.Key
	for i, p := range t.PublicKeys {
		raw, err := readBounded(p, maxKeyFile)
		if err != nil {
			return fmt.Errorf("trust.publicKeys[%d]: %w", i, err)
		}
		k, err := trust.ParsePublicKey(p, raw)
		if err != nil {
			return fmt.Errorf("trust.publicKeys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	t.keys = keys
	return nil
}

func (c *Config) loadTrustKeys() error {
	if c.Trust == nil {
		return nil
	}
	return c.Trust.LoadKeys()
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, fi.Size(), max)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
