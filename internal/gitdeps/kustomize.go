package gitdeps

import (
	"fmt"
	"net/url"
	"strings"
)

// RemoteBase is a kustomization entry (resources, bases, components) that
// names a directory in another git repository, as Kustomize's git loader
// reads it: "<repo URL>//<path>?ref=<ref>", "<repo>.git/<path>?ref=…",
// "github.com/<org>/<repo>/<path>?ref=…" (https), with an optional "git::"
// prefix and "version" as another name for "ref".
type RemoteBase struct {
	RepoURL string `json:"url"`            // normalized fetch URL of the repository
	Path    string `json:"path,omitempty"` // directory inside it, "" for its root
	Ref     string `json:"ref,omitempty"`  // branch, tag or commit; "" = the remote's HEAD
	// Commit is what Ref resolved to when the bundle was made (full hex);
	// recorded by the release side, empty from ParseRemoteBase.
	Commit string `json:"commit,omitempty"`
}

// ParseRemoteBase reads one kustomization entry. isRemote is false for a
// local path (no scheme, no "git@", not github.com/…), which the caller
// reads from disk; err is set for an entry that looks remote but cannot be
// fetched safely (bad URL, ".." in the path, option-like ref).
func ParseRemoteBase(entry string) (rb RemoteBase, isRemote bool, err error) {
	s := strings.TrimPrefix(entry, "git::")
	looksRemote := s != entry || strings.Contains(s, "://") || strings.HasPrefix(s, "git@") ||
		strings.HasPrefix(s, "github.com/") || strings.HasPrefix(s, "gitlab.com/") || strings.HasPrefix(s, "bitbucket.org/")
	if !looksRemote {
		return RemoteBase{}, false, nil
	}
	bad := func(why string) (RemoteBase, bool, error) {
		return RemoteBase{}, true, fmt.Errorf("%w: remote base %q: %s", ErrBadURL, cut(entry), why)
	}
	var query string
	s, query, _ = strings.Cut(s, "?")
	if query != "" {
		q, perr := url.ParseQuery(query)
		if perr != nil {
			return bad("bad query")
		}
		rb.Ref = q.Get("ref")
		if rb.Ref == "" {
			rb.Ref = q.Get("version")
		}
	}
	if strings.HasPrefix(rb.Ref, "-") || strings.ContainsFunc(rb.Ref, func(r rune) bool { return r <= 0x20 || r == 0x7f || r == '\\' || r == ':' }) {
		return bad("ref looks like an option or has a space, colon or control character")
	}
	prefix := ""
	switch {
	case strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "ssh://"):
		i := strings.Index(s, "://")
		prefix, s = s[:i+3], s[i+3:]
	case strings.HasPrefix(s, "git@"):
		host, rest, ok := strings.Cut(s, ":")
		if !ok {
			return bad("scp-like URL without ':'")
		}
		prefix, s = host+":", rest
	default:
		prefix = "https://"
	}
	// Host (and for URL forms, the rest of the authority) comes first.
	var repo, path string
	if i := strings.Index(s, "//"); i >= 0 {
		repo, path = s[:i], s[i+2:]
	} else if i := strings.Index(s, ".git/"); i >= 0 {
		repo, path = s[:i+4], s[i+5:]
	} else if strings.HasSuffix(s, ".git") {
		repo = s
	} else {
		segs := strings.Split(s, "/")
		host := segs[0]
		if strings.HasPrefix(prefix, "git@") {
			host = strings.TrimSuffix(strings.TrimPrefix(prefix, "git@"), ":")
			segs = append([]string{host}, segs...)
		}
		switch host {
		case "github.com", "gitlab.com", "bitbucket.org":
			if len(segs) < 3 {
				return bad("want <host>/<org>/<repo>")
			}
			if strings.HasPrefix(prefix, "git@") {
				repo = strings.Join(segs[1:3], "/")
			} else {
				repo = strings.Join(segs[:3], "/")
			}
			path = strings.Join(segs[3:], "/")
		default:
			return bad("cannot tell the repository from the path: write <repository>//<path> or <repository>.git/<path>")
		}
	}
	path = strings.Trim(path, "/")
	if path != "" {
		if err := checkRelPath(path); err != nil {
			return bad("path " + err.Error())
		}
	}
	u, err := Normalize(prefix + repo)
	if err != nil {
		return RemoteBase{}, true, fmt.Errorf("remote base %q: %w", cut(entry), err)
	}
	rb.RepoURL, rb.Path = u, path
	return rb, true, nil
}

// String is the entry in its canonical form, "<url>//<path>?ref=<ref>".
func (rb RemoteBase) String() string {
	s := rb.RepoURL + "//" + rb.Path
	if rb.Ref != "" {
		s += "?ref=" + rb.Ref
	}
	return s
}
