package helmrepo

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// IndexFile is the name of a Helm repository's index.
const IndexFile = "index.yaml"

// maxPathLen bounds a request path: a Helm repository URL's host and path
// plus one file name.
const maxPathLen = 2048

// ErrBadPath marks a request path the endpoint does not serve.
var ErrBadPath = errors.New("bad helm repository path")

// ParsePath splits the escaped request path below the endpoint's prefix
// ("charts.example.com/stable/index.yaml", as r.URL.EscapedPath() gives it
// after "/helm/") into the repository key (HelmRepoPath of the repository
// URL, host lowercased: "charts.example.com/stable") and the file
// ("index.yaml" or "<name>-<version>.tgz"). It refuses, with an error
// wrapping ErrBadPath: an empty path or segment, "." and "..", encoded
// slashes or backslashes, control or space characters, bad escapes, a path
// over 2048 bytes, fewer than two segments, and a file that is neither the
// index nor a .tgz.
func ParsePath(escaped string) (repo, file string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w %q: %s", ErrBadPath, truncate(escaped, 128), why)
	}
	if escaped == "" || len(escaped) > maxPathLen {
		return bad("empty or too long")
	}
	if l := strings.ToLower(escaped); strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(escaped, `\`) {
		return bad("encoded slash or backslash")
	}
	segs := strings.Split(escaped, "/")
	if len(segs) < 2 {
		return bad("want <host>[/<path>]/<file>")
	}
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return bad("bad escape")
		}
		if u == "" || u == "." || u == ".." {
			return bad("empty, . or .. segment")
		}
		if strings.IndexFunc(u, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8Error }) >= 0 {
			return bad("control or space character")
		}
		segs[i] = u
	}
	segs[0] = strings.ToLower(segs[0])
	file = segs[len(segs)-1]
	if file != IndexFile && (!strings.HasSuffix(file, ".tgz") || len(file) <= len(".tgz")) {
		return bad("not index.yaml or a .tgz")
	}
	return strings.Join(segs[:len(segs)-1], "/"), file, nil
}

// utf8Error is what ranging over invalid UTF-8 yields.
const utf8Error = '\uFFFD'

// RepoKey is the key of a Helm repository URL as ParsePath returns it:
// bundle.HelmRepoPath with the host lowercased (hosts are case-insensitive,
// paths are not).
func RepoKey(helmRepoPath string) string {
	host, rest, ok := strings.Cut(helmRepoPath, "/")
	if !ok {
		return strings.ToLower(host)
	}
	return strings.ToLower(host) + "/" + rest
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
