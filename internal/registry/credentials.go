package registry

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// DefaultUsername is the user name written into generated credentials files.
const DefaultUsername = "ballast"

// maxCredentialsSize bounds what ParseCredentials accepts: a credentials file
// is one short line, anything larger is not one.
const maxCredentialsSize = 4096

// Credentials are the HTTP basic credentials that writes to the edge registry
// need.
type Credentials struct {
	Username string
	Password string
}

// String hides the password so credentials never end up in logs.
func (c Credentials) String() string { return c.Username + ":********" }

// matches compares u and p with c in constant time. Hashing first makes the
// comparison independent of the lengths too.
func (c Credentials) matches(u, p string) bool {
	hu, hp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	wu, wp := sha256.Sum256([]byte(c.Username)), sha256.Sum256([]byte(c.Password))
	okU := subtle.ConstantTimeCompare(hu[:], wu[:])
	okP := subtle.ConstantTimeCompare(hp[:], wp[:])
	return okU&okP == 1
}

// ParseCredentials parses the content of a write credentials file: exactly
// one line "user:password", optionally ending in "\n" or "\r\n". The user
// name is not empty and has no ':'; neither part has white space or control
// characters; the password is not empty.
func ParseCredentials(b []byte) (Credentials, error) {
	if len(b) > maxCredentialsSize {
		return Credentials{}, fmt.Errorf("credentials: %d bytes, want one short line \"user:password\"", len(b))
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	s := string(b)
	if s == "" {
		return Credentials{}, errors.New(`credentials: empty, want one line "user:password"`)
	}
	if strings.ContainsAny(s, "\r\n") {
		return Credentials{}, errors.New(`credentials: more than one line, want one line "user:password"`)
	}
	user, pass, ok := strings.Cut(s, ":")
	if !ok {
		return Credentials{}, errors.New(`credentials: no ':', want one line "user:password"`)
	}
	if user == "" {
		return Credentials{}, errors.New("credentials: empty user name")
	}
	if pass == "" {
		return Credentials{}, errors.New("credentials: empty password")
	}
	for _, part := range []struct{ what, v string }{{"user name", user}, {"password", pass}} {
		for _, r := range part.v {
			if r == unicode.ReplacementChar || unicode.IsSpace(r) || unicode.IsControl(r) {
				return Credentials{}, fmt.Errorf("credentials: %s contains white space, a control character or invalid UTF-8", part.what)
			}
		}
	}
	return Credentials{Username: user, Password: pass}, nil
}

// LoadOrCreateCredentials reads the credentials file at path. If it does not
// exist, it generates a random password for DefaultUsername and writes the
// file crash-safely with mode 0600; when two processes race to create it,
// both end up with the one that was written first. created reports whether
// this call wrote the file.
func LoadOrCreateCredentials(path string) (c Credentials, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		c, err := ParseCredentials(b)
		if err != nil {
			return Credentials{}, false, fmt.Errorf("registry write credentials %s: %w", path, err)
		}
		return c, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Credentials{}, false, fmt.Errorf("registry write credentials: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Credentials{}, false, fmt.Errorf("generate registry password: %w", err)
	}
	c = Credentials{Username: DefaultUsername, Password: hex.EncodeToString(raw[:])}
	won, err := createFileOnce(path, []byte(c.Username+":"+c.Password+"\n"), 0o600)
	if err != nil {
		return Credentials{}, false, fmt.Errorf("write registry write credentials: %w", err)
	}
	if !won {
		// Someone else created it between our read and our link: theirs wins.
		c, _, err = LoadOrCreateCredentials(path)
		return c, false, err
	}
	return c, true, nil
}

// createFileOnce writes data to path unless path already exists,
// crash-safely (atomicfile.CreateOnce), creating the directory first. It
// reports false if path already existed.
func createFileOnce(path string, data []byte, perm os.FileMode) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	return atomicfile.CreateOnce(path, data, perm)
}

// writeFileAtomic replaces path with data (atomicfile.WriteFile), creating
// the directory first.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, perm)
}
