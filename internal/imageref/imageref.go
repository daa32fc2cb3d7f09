// Package imageref normalizes container image references and maps them onto
// the repository names used inside the edge registry (DESIGN.md, "Edge
// registry layout"). It is shared by the release side and the edge.
package imageref

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// registryHost is a registry as a reference may name it: a DNS name or
// IPv4 address, or a bracketed IPv6 address, with an optional port (the
// distribution reference grammar's domain; go-containerregistry is laxer).
var registryHost = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$`)

// pathComponent is the OCI distribution grammar for one repository path component.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// MaxNameLength is the longest repository name, registry host included,
// that a registry takes (255: the distribution reference grammar's
// NameTotalLengthMax, which the edge registry enforces on every request).
// An image is stored at the edge under its EdgeRepository, as long as its
// Name, so a longer name could be bundled but never landed.
const MaxNameLength = 255

// DockerHub is the canonical name of Docker Hub everywhere in ballast.
const DockerHub = "docker.io"

// Ref is a fully qualified image reference. Tag and Digest may both be set
// when the source gave both; at least one of them is always set.
type Ref struct {
	Registry   string // host[:port], "docker.io" for Docker Hub
	Repository string // path inside the registry, e.g. "library/nginx"
	Tag        string // may be empty when Digest is set
	Digest     string // "sha256:…", may be empty
}

// Parse normalizes s the way container runtimes resolve it: a missing
// registry means docker.io, a missing namespace on Docker Hub means library/,
// and a missing tag and digest means :latest. Digests are kept.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, errors.New("empty image reference")
	}
	if strings.TrimSpace(s) != s {
		return Ref{}, fmt.Errorf("image reference %q: surrounding white space", s)
	}
	rest, dig, hasDigest := strings.Cut(s, "@")
	var r Ref
	if hasDigest {
		d, err := name.NewDigest(rest + "@" + dig)
		if err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
		}
		r.Digest = d.DigestStr()
	}
	var repo name.Repository
	if t, err := name.NewTag(rest, name.WithDefaultTag("")); err == nil && hasTag(rest) {
		r.Tag = t.TagStr()
		repo = t.Repository
	} else {
		rp, rerr := name.NewRepository(rest)
		if rerr != nil {
			if err != nil {
				return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
			}
			return Ref{}, fmt.Errorf("image reference %q: %w", s, rerr)
		}
		repo = rp
	}
	r.Registry = canonicalRegistry(repo.RegistryStr())
	r.Repository = repo.RepositoryStr()
	if !registryHost.MatchString(r.Registry) {
		return Ref{}, fmt.Errorf("image reference %q: registry %q is not a host name or address with an optional port", s, r.Registry)
	}
	for _, c := range strings.Split(r.Repository, "/") {
		if !pathComponent.MatchString(c) {
			return Ref{}, fmt.Errorf("image reference %q: invalid repository path component %q", s, c)
		}
	}
	// Checked on the normalized name: "library/" and the registry count.
	if n := len(r.Name()); n > MaxNameLength {
		return Ref{}, fmt.Errorf("image reference %q: name %s… is %d characters, over the registry limit of %d", s, r.Name()[:32], n, MaxNameLength)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// hasTag reports whether the last path component of s carries a ":tag".
func hasTag(s string) bool {
	last := s[strings.LastIndex(s, "/")+1:]
	return strings.Contains(last, ":")
}

func canonicalRegistry(reg string) string {
	if reg == name.DefaultRegistry || reg == "registry-1.docker.io" {
		return DockerHub
	}
	return reg
}

// Name is registry/repository, e.g. "docker.io/library/nginx".
func (r Ref) Name() string { return r.Registry + "/" + r.Repository }

// String is the fully qualified reference: name:tag, name@digest or
// name:tag@digest.
func (r Ref) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// EdgeRepository is the repository name of this image inside the edge
// registry: its fully qualified name with a registry port mapped as
// EdgeRegistryComponent does.
func (r Ref) EdgeRepository() string {
	return EdgeRegistryComponent(r.Registry) + "/" + r.Repository
}

// EdgeRegistryComponent maps a registry host[:port] onto a valid repository
// path component: "127.0.0.1:5000" becomes "127.0.0.1_5000". A ':' is not
// allowed in repository names.
func EdgeRegistryComponent(registry string) string {
	return strings.ToLower(strings.ReplaceAll(canonicalRegistry(registry), ":", "_"))
}

// BundleRepository returns the edge repository that holds the bundle indexes
// of a git repository: "ballast/bundles/<host>/<path>", lowercased, without
// ".git", with every ':' mapped to '_' as EdgeRegistryComponent maps a port
// (a mirror URL such as http://port:8080/git/git.example.com:3000/fleet/apps.git
// carries a host:port inside its path). Credentials in the URL are ignored.
// It fails, naming the URL and the component, when a path component is
// still not valid in an OCI repository name (e.g. "~user", "a..b").
func BundleRepository(gitURL string) (string, error) {
	id, err := RepoID(gitURL)
	if err != nil {
		return "", err
	}
	name := "ballast/bundles/" + strings.ToLower(strings.ReplaceAll(id, ":", "_"))
	for _, c := range strings.Split(name, "/") {
		if !pathComponent.MatchString(c) {
			return "", fmt.Errorf("git URL %q: path component %q cannot be part of an OCI repository name (lowercase letters, digits and single separators . _ __ - only)", gitURL, c)
		}
	}
	if len(name) > MaxNameLength {
		return "", fmt.Errorf("git URL %q: its bundle repository %s… would be %d characters, over the registry limit of %d", gitURL, name[:48], len(name), MaxNameLength)
	}
	return name, nil
}

// RepoID returns "<host[:port]>/<path>" of a git URL, without ".git" or a
// trailing slash. It is the key the mirror serves a repository under
// (/git/<RepoID>.git) and is not lowercased.
func RepoID(gitURL string) (string, error) {
	u, err := url.Parse(gitURL)
	if err != nil {
		return "", fmt.Errorf("git URL %q: %w", gitURL, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("git URL %q: no host", gitURL)
	}
	p := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	p = strings.Trim(p, "/")
	if p == "" {
		return "", fmt.Errorf("git URL %q: no repository path", gitURL)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("git URL %q: bad path segment %q", gitURL, seg)
		}
	}
	return u.Host + "/" + p, nil
}
