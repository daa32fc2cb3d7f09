// Package apiauth is the credential of the edge daemon's state-changing
// HTTP API routes: a bearer token the daemon generates at first start (or
// reads from the file the config names), that `ballast install` provisions
// as a Secret and `ballast verify` sends as "Authorization: Bearer <token>".
package apiauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// EnvToken is the environment variable `ballast verify` reads the token
// from when no token file is given.
const EnvToken = "BALLAST_API_TOKEN"

// Token length bounds, in bytes of the token text.
const (
	MinLen = 32
	MaxLen = 512
)

// Token is an API token. Its String method never shows the secret.
type Token struct{ secret string }

// String masks the token.
func (t Token) String() string { return "********" }

// Secret returns the token text, for writing it into a Secret or a header.
func (t Token) Secret() string { return t.secret }

// IsZero reports an unset token.
func (t Token) IsZero() bool { return t.secret == "" }

// Parse parses the content of a token file or variable: one line of MinLen
// to MaxLen printable ASCII characters (no white space), with an optional
// trailing newline. The error never quotes the content.
func Parse(b []byte) (Token, error) {
	if len(b) > MaxLen+2 {
		return Token{}, fmt.Errorf("api token: %d bytes, want one line of %d to %d characters", len(b), MinLen, MaxLen)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if len(s) < MinLen || len(s) > MaxLen {
		return Token{}, fmt.Errorf("api token: %d characters, want %d to %d", len(s), MinLen, MaxLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return Token{}, fmt.Errorf("api token: byte %d is white space, a control character or not ASCII", i)
		}
	}
	return Token{secret: s}, nil
}

// ReadFile reads and parses the token file at path.
func ReadFile(path string) (Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Token{}, fmt.Errorf("api token: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Generate returns a new random token (64 hex characters, 256 bits).
func Generate() (Token, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Token{}, fmt.Errorf("generate api token: %w", err)
	}
	return Token{secret: hex.EncodeToString(raw[:])}, nil
}

// LoadOrCreate reads the token file at path. If it does not exist, it
// generates a token and writes the file crash-safely with mode 0600 (temp
// file, fsync, hard link so a racing creator's file wins, fsync of the
// directory). created reports whether this call wrote the file.
func LoadOrCreate(path string) (t Token, created bool, err error) {
	t, err = ReadFile(path)
	switch {
	case err == nil:
		return t, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Token{}, false, err
	}
	if t, err = Generate(); err != nil {
		return Token{}, false, err
	}
	won, err := createFileOnce(path, []byte(t.secret+"\n"), 0o600)
	if err != nil {
		return Token{}, false, fmt.Errorf("write api token: %w", err)
	}
	if !won {
		t, err = ReadFile(path)
		return t, false, err
	}
	return t, true, nil
}

// Matches reports whether presented is the token, in time independent of
// where they differ (both are hashed first, so their lengths leak nothing).
func (t Token) Matches(presented string) bool {
	if t.secret == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(t.secret)), sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// FromRequest returns the bearer token of r's Authorization header, and
// whether there was one.
func FromRequest(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// SetHeader sets r's Authorization header to the token; a zero token sets
// nothing.
func (t Token) SetHeader(r *http.Request) {
	if t.secret != "" {
		r.Header.Set("Authorization", "Bearer "+t.secret)
	}
}

// createFileOnce writes path unless it exists (atomicfile.CreateOnce),
// creating the directory first.
func createFileOnce(path string, data []byte, perm os.FileMode) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	return atomicfile.CreateOnce(path, data, perm)
}
