// Package lfs mirrors the Git LFS objects of the revisions the edge keeps
// and serves them to LFS clients (Argo CD's repo-server with enableLfs, the
// git-lfs CLI) over the LFS batch API, download only, at the mirror's
// repository URLs: <mirror>/git/<host>/<path>.git/info/lfs/objects/batch.
//
// Objects are fetched with the git-lfs CLI from the upstream's LFS endpoint
// (as git-lfs itself finds it: .lfsconfig, else <url>/info/lfs) into a
// staging directory, verified against their sha256 and size, fsynced and
// renamed into a per-repository store. Only objects that some tracked or
// kept revision points at are fetched and kept; the rest are pruned.
package lfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxPointerSize is the largest blob read as a pointer file: git-lfs itself
// never treats a larger blob as one (its blobSizeCutoff).
const MaxPointerSize = 1024

// Pointer names one LFS object: the sha256 of its content (64 lowercase hex
// digits) and its size in bytes.
type Pointer struct {
	OID  string `json:"oid"`
	Size int64  `json:"size"`
}

// Spec version lines accepted, as git-lfs accepts them (the second is the
// pre-release name of the format).
var versions = []string{"https://git-lfs.github.com/spec/v1", "https://hawser.github.com/spec/v1"}

// ErrNotPointer means the blob does not claim to be a pointer at all: it is
// a plain file. Any other error from ParsePointer is a malformed pointer.
var ErrNotPointer = errors.New("not an LFS pointer")

// ParsePointer parses a pointer file as the Git LFS specification
// (docs/spec.md in git-lfs) defines it: UTF-8 lines "key value\n", the first
// "version <spec URL>", the rest sorted by key, with "oid sha256:<hex>" and
// "size <bytes>" required. Blobs that do not start with "version " are not
// pointers (ErrNotPointer); blobs that do but break a rule are malformed
// (an error saying which rule). Pointer extensions (ext-N-name) are refused.
func ParsePointer(b []byte) (Pointer, error) {
	if len(b) > MaxPointerSize || !bytes.HasPrefix(b, []byte("version ")) {
		return Pointer{}, ErrNotPointer
	}
	if !bytes.HasSuffix(b, []byte("\n")) {
		return Pointer{}, errors.New("pointer: last line not terminated by a newline")
	}
	var p Pointer
	var prev string
	haveOID, haveSize := false, false
	for i, line := range strings.Split(string(b[:len(b)-1]), "\n") {
		key, val, ok := strings.Cut(line, " ")
		if !ok || key == "" || val == "" {
			return Pointer{}, fmt.Errorf("pointer: line %d: want \"key value\"", i+1)
		}
		for _, c := range key {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
				return Pointer{}, fmt.Errorf("pointer: line %d: bad key", i+1)
			}
		}
		if i == 0 {
			if !valid(val) {
				return Pointer{}, fmt.Errorf("pointer: unknown spec version %q", short(val))
			}
			continue
		}
		if key == "version" || key <= prev {
			return Pointer{}, fmt.Errorf("pointer: line %d: key %q out of order or repeated", i+1, key)
		}
		prev = key
		switch {
		case key == "oid":
			hex, ok := strings.CutPrefix(val, "sha256:")
			if !ok {
				return Pointer{}, fmt.Errorf("pointer: oid %q: only sha256 is supported", short(val))
			}
			if !IsOID(hex) {
				return Pointer{}, fmt.Errorf("pointer: oid %q: want 64 lowercase hex digits", short(hex))
			}
			p.OID, haveOID = hex, true
		case key == "size":
			n, err := parseSize(val)
			if err != nil {
				return Pointer{}, fmt.Errorf("pointer: size %q: %w", short(val), err)
			}
			p.Size, haveSize = n, true
		case strings.HasPrefix(key, "ext-"):
			return Pointer{}, fmt.Errorf("pointer: extension %q not supported", short(key))
		default:
			// Unknown keys are allowed by the spec and ignored.
		}
	}
	if !haveOID || !haveSize {
		return Pointer{}, errors.New("pointer: oid and size lines are required")
	}
	return p, nil
}

func valid(v string) bool {
	for _, s := range versions {
		if v == s {
			return true
		}
	}
	return false
}

// parseSize reads a non-negative decimal without sign or leading zeros.
func parseSize(s string) (int64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("want a non-negative decimal number")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// IsOID reports whether s is a sha256 object id: 64 lowercase hex digits.
func IsOID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// String returns the pointer file text git-lfs writes for p.
func (p Pointer) String() string {
	return fmt.Sprintf("version %s\noid sha256:%s\nsize %d\n", versions[0], p.OID, p.Size)
}

func short(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
