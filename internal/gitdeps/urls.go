// Package gitdeps owns the policy for the git repositories a revision needs
// beyond its own: the submodules of .gitmodules and the remote bases of
// Kustomize kustomizations. It parses and validates them, resolves
// submodule URLs the way git does, names every upstream by its mirror id
// ("<host>/<path>", as internal/imageref.RepoID) and writes the
// url.<base>.insteadOf rules that send git to the mirror instead of the
// upstream. It does no I/O: the mirror (internal/gitmirror), the release
// side (internal/release), install and verify call it.
package gitdeps

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ballast-dev/ballast/internal/imageref"
)

// ErrBadURL marks a repository URL that is refused: option-like, a local
// path, a transport other than http, https or ssh, or a relative URL that
// climbs above its host.
var ErrBadURL = errors.New("bad repository URL")

func badURL(u, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadURL, cut(u), why)
}

func cut(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// Normalize returns the URL git fetches u from, in URL form: http(s) and
// ssh URLs are returned as given; the scp-like form "user@host:path" becomes
// "ssh://user@host/path". Anything else is ErrBadURL: option-like strings
// ("-u…", "--upload-pack=…"), local paths, file://, git://, ext:: and other
// transport helpers, URLs with a password or control characters.
func Normalize(u string) (string, error) {
	if u == "" {
		return "", badURL(u, "empty")
	}
	if strings.HasPrefix(u, "-") {
		return "", badURL(u, "looks like a command-line option")
	}
	if strings.ContainsFunc(u, func(r rune) bool { return r <= 0x20 || r == 0x7f || r == '\\' }) {
		return "", badURL(u, "space, backslash or control character")
	}
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		switch scheme {
		case "http", "https", "ssh":
		default:
			return "", badURL(u, "transport "+scheme+":// not allowed (want http, https or ssh)")
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || strings.HasPrefix(pu.Host, "-") {
			return "", badURL(u, "no host")
		}
		if _, has := pu.User.Password(); has {
			return "", badURL(u, "credentials belong in files, not the URL")
		}
		if pu.User != nil && scheme != "ssh" {
			return "", badURL(u, "user name in an http URL")
		}
		if pu.RawQuery != "" || pu.Fragment != "" {
			return "", badURL(u, "query or fragment")
		}
		if _, err := imageref.RepoID(u); err != nil {
			return "", badURL(u, "no repository path")
		}
		_ = rest
		return u, nil
	}
	if strings.Contains(u, "::") {
		return "", badURL(u, "transport helpers (<transport>::) not allowed")
	}
	// scp-like: [user@]host:path, where host has no slash before the colon.
	colon := strings.IndexByte(u, ':')
	slash := strings.IndexByte(u, '/')
	if colon <= 0 || (slash >= 0 && slash < colon) {
		return "", badURL(u, "not a URL (local paths are not allowed)")
	}
	hostPart, path := u[:colon], u[colon+1:]
	user, host, hasUser := strings.Cut(hostPart, "@")
	if !hasUser {
		host, user = hostPart, ""
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, "@[]") || (hasUser && user == "") {
		return "", badURL(u, "bad host")
	}
	path = strings.TrimPrefix(path, "/")
	if strings.ContainsAny(path, "?#%") {
		return "", badURL(u, "query, fragment or escape in the path")
	}
	if path == "" {
		return "", badURL(u, "no repository path")
	}
	n := "ssh://" + hostPart + "/" + path
	if _, err := url.Parse(n); err != nil {
		return "", badURL(u, "not a URL")
	}
	if _, err := imageref.RepoID(n); err != nil {
		return "", badURL(u, "bad repository path")
	}
	return n, nil
}

// ID returns the mirror id of a repository URL in any accepted form:
// "<host>/<path>" without ".git" (http(s) hosts keep their port), e.g.
// "git@github.com:fleet/lib.git" and "https://github.com/fleet/lib" are both
// "github.com/fleet/lib". The mirror serves it at /git/<id>.git.
func ID(u string) (string, error) {
	n, err := Normalize(u)
	if err != nil {
		return "", err
	}
	id, err := imageref.RepoID(n)
	if err != nil {
		return "", badURL(u, err.Error())
	}
	return id, nil
}

// IsRelative reports whether a submodule URL is relative to its
// superproject's URL ("./…" or "../…"), as git decides.
func IsRelative(u string) bool {
	return strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../")
}

// ResolveSubmoduleURL returns the upstream URL of a submodule: sub itself
// when absolute (normalized), else sub resolved against super (the
// superproject's upstream URL) as git does for "./" and "../" URLs: each
// "../" removes one path segment of super. Climbing above super's host is
// ErrBadURL, as is anything Normalize refuses.
func ResolveSubmoduleURL(super, sub string) (string, error) {
	if !IsRelative(sub) {
		return Normalize(sub)
	}
	base, err := Normalize(super)
	if err != nil {
		return "", fmt.Errorf("superproject: %w", err)
	}
	pu, err := url.Parse(base)
	if err != nil {
		return "", badURL(super, "not a URL")
	}
	segs := strings.Split(strings.Trim(pu.Path, "/"), "/")
	rel := sub
	for {
		switch {
		case strings.HasPrefix(rel, "./"):
			rel = rel[2:]
			continue
		case strings.HasPrefix(rel, "../"):
			if len(segs) == 0 {
				return "", badURL(sub, "climbs above the host of "+cut(super))
			}
			segs = segs[:len(segs)-1]
			rel = rel[3:]
			continue
		case rel == "..":
			return "", badURL(sub, "names a directory, not a repository")
		}
		break
	}
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" {
		return "", badURL(sub, "names no repository")
	}
	for _, s := range strings.Split(rel, "/") {
		if s == "" || s == "." || s == ".." {
			return "", badURL(sub, "bad path segment")
		}
	}
	pu.Path = "/" + strings.Join(append(segs, rel), "/")
	pu.RawPath = ""
	return Normalize(pu.String())
}
