// Package charts fetches the Helm charts that Argo CD Applications name by
// repository and version (`repoURL` + `chart` + `targetRevision`): from a
// classic HTTP Helm repository (index.yaml + .tgz) or from an OCI registry.
// It resolves a version range to one exact version with Helm's semver rules,
// as Argo CD does, checks the archive (digest, size, no paths leaving the
// chart, no links) and keeps what it downloaded in an optional cache so a
// chart is rendered offline once it has been fetched.
//
// It is release-side only (it imports Helm): the edge must not import it.
package charts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/repo"
)

// Default limits.
const (
	// DefaultMaxChartBytes bounds a chart archive, compressed and
	// uncompressed alike: 20 MiB (Helm's largest public charts are < 2 MiB).
	DefaultMaxChartBytes = 20 << 20
	// DefaultMaxIndexBytes bounds a repository's index.yaml: 64 MiB
	// (Bitnami's full index was about 30 MiB before they trimmed it).
	DefaultMaxIndexBytes = 64 << 20
)

// ErrUnavailable marks failures to reach a chart repository or registry
// (connection refused, timeouts, 5xx): the input may be fine, the network
// is not. Every other error from Fetch is about the input.
var ErrUnavailable = errors.New("chart source unavailable")

// Ref names a chart as an Argo CD Application source does.
type Ref struct {
	// RepoURL is the Helm repository (https://charts.example.com) or the
	// OCI repository holding the chart (oci://registry.example.com/charts,
	// or registry.example.com/charts without a scheme, as Argo CD takes it
	// with enableOCI).
	RepoURL string
	// Chart is the chart's name in the repository.
	Chart string
	// TargetRevision is an exact version ("1.15.3") or a semver range
	// ("1.15.x", ">=1.2 <2", "*"); empty means the latest stable version.
	TargetRevision string
}

// String is "chart <name> <revision> from <repoURL>", or "OCI source
// <repoURL>" without a chart.
func (r Ref) String() string {
	if r.Chart == "" {
		return "OCI source " + r.RepoURL
	}
	rev := r.TargetRevision
	if rev == "" {
		rev = "(latest)"
	}
	return fmt.Sprintf("chart %s %s from %s", r.Chart, rev, r.RepoURL)
}

// IsOCI reports whether the chart comes from an OCI registry: an oci://
// URL, or a URL without a scheme (Argo CD reads those as OCI when the
// repository has enableOCI; http(s) Helm repositories always have one).
func (r Ref) IsOCI() bool {
	return strings.HasPrefix(r.RepoURL, "oci://") || !strings.Contains(r.RepoURL, "://")
}

// Resolved is what a Ref resolved to: what a bundle records.
type Resolved struct {
	RepoURL        string `json:"repoURL"`
	Chart          string `json:"chart"`
	TargetRevision string `json:"targetRevision"`
	// Version is the exact chart version chosen.
	Version string `json:"version"`
	// Digest is the sha256 of the chart archive (.tgz), "sha256:<hex>".
	Digest string `json:"digest"`
	// Size is the archive's size in bytes.
	Size int64 `json:"size"`
	// URL is where the archive was downloaded from (the .tgz URL, or
	// oci://host/repo/chart:version); empty when it came from the cache.
	URL string `json:"url,omitempty"`
	// Cached is true when no network was used for the archive.
	Cached bool `json:"cached"`
	// Manifest is the digest of the OCI manifest the chart or OCI source
	// was pulled by ("sha256:<hex>"); empty for a chart from an HTTP Helm
	// repository and for an OCI chart read from the cache.
	Manifest string `json:"manifest,omitempty"`
	// ArtifactType is the config media type of that OCI manifest, when
	// known (Helm's for a chart).
	ArtifactType string `json:"artifactType,omitempty"`
}

// IsSource reports whether r is an Argo CD OCI source rather than a chart.
func (r Resolved) IsSource() bool { return r.Chart == "" }

// Fetcher resolves and downloads charts. The zero value works: no cache,
// default limits, http.DefaultClient. Safe for concurrent use.
type Fetcher struct {
	// CacheDir keeps index.yaml files and chart archives; empty means no
	// cache. A chart with an exact version already in the cache is used
	// without network; a range is resolved against the cached index when
	// the repository cannot be reached.
	CacheDir string
	// MaxChartBytes bounds a chart archive (default DefaultMaxChartBytes).
	MaxChartBytes int64
	// MaxIndexBytes bounds an index.yaml (default DefaultMaxIndexBytes).
	MaxIndexBytes int64
	// Client makes the HTTP requests to Helm repositories (default
	// http.DefaultClient).
	Client *http.Client
	// Insecure talks plain HTTP to OCI registries that are not on
	// loopback (loopback registries always use plain HTTP).
	Insecure bool
	// Log receives warnings; nil discards them.
	Log *slog.Logger
	// Keychain gives credentials for OCI registries (default
	// authn.DefaultKeychain: the docker config, as bundle uses for images).
	Keychain authn.Keychain
	// RepoAuth gives HTTP basic credentials for Helm repositories: a
	// request whose URL starts with a credential's URLPrefix carries it.
	// Credentials are never logged nor written to the cache.
	RepoAuth []RepoCredential
	// KeepArchives keeps the bytes of every chart archive fetched, for
	// Archive (a bundle carries them). Off, nothing is kept.
	KeepArchives bool

	mu       sync.Mutex
	resolved []Resolved
	archives map[string][]byte // by Resolved.Digest
}

// Fresh returns a Fetcher with f's settings (cache, limits, client,
// credentials, KeepArchives) and nothing resolved yet.
func (f *Fetcher) Fresh() *Fetcher {
	return &Fetcher{CacheDir: f.CacheDir, MaxChartBytes: f.MaxChartBytes, MaxIndexBytes: f.MaxIndexBytes,
		Client: f.Client, Insecure: f.Insecure, Log: f.Log, Keychain: f.Keychain,
		RepoAuth: f.RepoAuth, KeepArchives: f.KeepArchives}
}

// RepoCredential is the HTTP basic login of a Helm repository.
type RepoCredential struct {
	URLPrefix string // e.g. "https://charts.example.com/private/"
	Username  string
	Password  string
}

// remoteOptions are the go-containerregistry options of OCI requests.
func (f *Fetcher) remoteOptions(ctx context.Context) []remote.Option {
	kc := f.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if f.Client != nil && f.Client.Transport != nil {
		opts = append(opts, remote.WithTransport(f.Client.Transport))
	}
	return opts
}

// credentialFor returns the credential for u (the longest matching
// prefix), or nil.
func (f *Fetcher) credentialFor(u string) *RepoCredential {
	var best *RepoCredential
	for i, c := range f.RepoAuth {
		p := c.URLPrefix
		if p == "" || !strings.HasPrefix(u, p) {
			continue
		}
		// A prefix without a trailing slash matches whole path segments only.
		if rest := u[len(p):]; !strings.HasSuffix(p, "/") && rest != "" && rest[0] != '/' {
			continue
		}
		if best == nil || len(p) > len(best.URLPrefix) {
			best = &f.RepoAuth[i]
		}
	}
	return best
}

// Archive returns the chart archive (.tgz) that r was resolved to, kept
// when KeepArchives is set; false when it was not kept.
func (f *Fetcher) Archive(r Resolved) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.archives[r.Digest]
	return data, ok
}

func (f *Fetcher) maxChart() int64 {
	if f.MaxChartBytes > 0 {
		return f.MaxChartBytes
	}
	return DefaultMaxChartBytes
}

func (f *Fetcher) maxIndex() int64 {
	if f.MaxIndexBytes > 0 {
		return f.MaxIndexBytes
	}
	return DefaultMaxIndexBytes
}

func (f *Fetcher) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}

// Resolved returns every chart fetched so far, in order, once each.
func (f *Fetcher) Resolved() []Resolved {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Resolved(nil), f.resolved...)
}

func (f *Fetcher) record(r Resolved) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, have := range f.resolved {
		if have.RepoURL == r.RepoURL && have.Chart == r.Chart && have.TargetRevision == r.TargetRevision {
			return
		}
	}
	f.resolved = append(f.resolved, r)
}

// Fetch resolves ref to one exact version, downloads (or reads from the
// cache) its archive, checks it and loads it. Errors name the repository
// URL or the archive; they wrap ErrUnavailable when the network failed.
func (f *Fetcher) Fetch(ctx context.Context, ref Ref) (*chart.Chart, Resolved, error) {
	if ref.Chart == "" || strings.ContainsAny(ref.Chart, "/\\") || ref.Chart == "." || ref.Chart == ".." {
		return nil, Resolved{}, fmt.Errorf("%s: chart name %q is not a plain name", ref, ref.Chart)
	}
	var (
		data []byte
		res  Resolved
		err  error
	)
	if ref.IsOCI() {
		data, res, err = f.fetchOCI(ctx, ref)
	} else {
		data, res, err = f.fetchHTTP(ctx, ref)
	}
	if err != nil {
		return nil, Resolved{}, err
	}
	label := res.URL
	if label == "" {
		label = f.archivePath(ref, res.Version)
	}
	chrt, err := LoadArchive(data, f.maxChart())
	if err != nil {
		return nil, Resolved{}, fmt.Errorf("%s: %s: %w", ref, label, err)
	}
	if chrt.Name() != ref.Chart || chrt.Metadata.Version != res.Version {
		return nil, Resolved{}, fmt.Errorf("%s: %s holds chart %s %s, want %s %s", ref, label,
			chrt.Name(), chrt.Metadata.Version, ref.Chart, res.Version)
	}
	// Only a checked archive of the right chart is kept.
	if p := f.archivePath(ref, res.Version); p != "" && !res.Cached {
		if err := writeFileAtomic(p, data); err != nil {
			f.log().Warn("chart cache: not saved", "file", p, "err", err)
		}
	}
	f.record(res)
	if f.KeepArchives {
		f.mu.Lock()
		if f.archives == nil {
			f.archives = map[string][]byte{}
		}
		f.archives[res.Digest] = data
		f.mu.Unlock()
	}
	return chrt, res, nil
}

// exactVersion reports whether rev names one version rather than a range.
func exactVersion(rev string) bool {
	_, err := semver.StrictNewVersion(strings.TrimPrefix(rev, "v"))
	return err == nil
}

// repoKey is the cache directory of one repository URL.
func repoKey(repoURL string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(repoURL, "/")))
	return hex.EncodeToString(sum[:8])
}

func (f *Fetcher) archivePath(ref Ref, version string) string {
	if f.CacheDir == "" {
		return ""
	}
	return filepath.Join(f.CacheDir, repoKey(ref.RepoURL), ref.Chart+"-"+version+".tgz")
}

// fromCache returns the cached archive of an exact version, if any.
func (f *Fetcher) fromCache(ref Ref, version string) ([]byte, Resolved, bool) {
	p := f.archivePath(ref, version)
	if p == "" {
		return nil, Resolved{}, false
	}
	data, err := readLimited(p, f.maxChart())
	if err != nil {
		return nil, Resolved{}, false
	}
	return data, resolvedOf(ref, version, data, "", true), true
}

func resolvedOf(ref Ref, version string, data []byte, from string, cached bool) Resolved {
	sum := sha256.Sum256(data)
	return Resolved{
		RepoURL: ref.RepoURL, Chart: ref.Chart, TargetRevision: ref.TargetRevision,
		Version: version, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data)),
		URL: from, Cached: cached,
	}
}

func readLimited(p string, limit int64) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than the limit of %d bytes", p, limit)
	}
	return data, nil
}

// fetchHTTP resolves ref in the repository's index.yaml and downloads the
// archive it names.
func (f *Fetcher) fetchHTTP(ctx context.Context, ref Ref) ([]byte, Resolved, error) {
	base, err := url.Parse(strings.TrimSuffix(ref.RepoURL, "/") + "/")
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, Resolved{}, fmt.Errorf("%s: repoURL is not an http(s) Helm repository URL", ref)
	}
	if base.User != nil {
		return nil, Resolved{}, fmt.Errorf("%s: credentials in the repoURL are refused", ref)
	}
	if exactVersion(ref.TargetRevision) {
		if data, res, ok := f.fromCache(ref, strings.TrimPrefix(ref.TargetRevision, "v")); ok {
			f.log().Debug("chart from cache", "chart", ref.Chart, "version", res.Version)
			return data, res, nil
		}
	}
	idx, err := f.index(ctx, ref, base)
	if err != nil {
		return nil, Resolved{}, err
	}
	cv, err := idx.Get(ref.Chart, ref.TargetRevision)
	if err != nil {
		switch {
		case errors.Is(err, repo.ErrNoChartName):
			return nil, Resolved{}, fmt.Errorf("%s: no chart %q in %sindex.yaml", ref, ref.Chart, base)
		default:
			return nil, Resolved{}, fmt.Errorf("%s: no version of %q in %sindex.yaml matches %q: %w", ref, ref.Chart, base, ref.TargetRevision, err)
		}
	}
	if data, res, ok := f.fromCache(ref, cv.Version); ok && (cv.Digest == "" || "sha256:"+cv.Digest == res.Digest) {
		return data, res, nil
	}
	if len(cv.URLs) == 0 {
		return nil, Resolved{}, fmt.Errorf("%s: %sindex.yaml lists %s %s without urls", ref, base, ref.Chart, cv.Version)
	}
	u, err := base.Parse(cv.URLs[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, Resolved{}, fmt.Errorf("%s: %sindex.yaml: chart URL %q is not an http(s) URL", ref, base, cv.URLs[0])
	}
	data, err := f.get(ctx, u.String(), f.maxChart())
	if err != nil {
		return nil, Resolved{}, fmt.Errorf("%s: %w", ref, err)
	}
	res := resolvedOf(ref, cv.Version, data, u.String(), false)
	if cv.Digest != "" && "sha256:"+strings.ToLower(cv.Digest) != res.Digest {
		return nil, Resolved{}, fmt.Errorf("%s: %s: digest %s, index.yaml says sha256:%s", ref, u, res.Digest, cv.Digest)
	}
	return data, res, nil
}

// index downloads and parses the repository's index.yaml, keeping a copy in
// the cache; when the repository is unreachable the cached copy is used.
func (f *Fetcher) index(ctx context.Context, ref Ref, base *url.URL) (*repo.IndexFile, error) {
	u := base.JoinPath("index.yaml").String()
	cached := ""
	if f.CacheDir != "" {
		cached = filepath.Join(f.CacheDir, repoKey(ref.RepoURL), "index.yaml")
	}
	data, err := f.get(ctx, u, f.maxIndex())
	if err != nil {
		if cached != "" && errors.Is(err, ErrUnavailable) {
			if data, cerr := readLimited(cached, f.maxIndex()); cerr == nil {
				f.log().Warn("chart repository unreachable: resolving against the cached index", "url", u, "err", err)
				idx, perr := ParseIndex(data)
				if perr != nil {
					return nil, fmt.Errorf("%s: cached %s: %w", ref, cached, perr)
				}
				return idx, nil
			}
		}
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	idx, err := ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", ref, u, err)
	}
	if cached != "" {
		if err := writeFileAtomic(cached, data); err != nil {
			f.log().Warn("chart cache: index not saved", "file", cached, "err", err)
		}
	}
	return idx, nil
}

// get downloads u, refusing bodies over limit. Network failures and 5xx
// answers wrap ErrUnavailable; 4xx answers are about the input.
func (f *Fetcher) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if c := f.credentialFor(u); c != nil {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w: %w", u, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("GET %s: %w: %s", u, ErrUnavailable, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("GET %s: %d bytes, larger than the limit of %d bytes", u, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w: %w", u, ErrUnavailable, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: larger than the limit of %d bytes", u, limit)
	}
	return data, nil
}

// ParseIndex parses a Helm repository index (YAML or JSON) with Helm's own
// loader: strict fields, apiVersion required, invalid entries dropped, each
// chart's versions sorted newest first.
func ParseIndex(data []byte) (*repo.IndexFile, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("index.yaml is empty")
	}
	// Helm exports only a file loader; the bytes go through a temp file.
	tmp, err := os.CreateTemp("", "ballast-index-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	idx, err := repo.LoadIndexFile(tmp.Name())
	if err != nil {
		// Helm's message names the temp file; ours names the source.
		msg := strings.ReplaceAll(err.Error(), "error loading "+tmp.Name()+": ", "")
		return nil, fmt.Errorf("malformed index: %s", msg)
	}
	return idx, nil
}

// LoadArchive checks a chart archive (.tgz) and loads it: at most limit
// bytes compressed and uncompressed, only regular files and directories
// (no symlinks, hard links or devices), no absolute paths or `..`, every
// file under one top directory. Then Helm's loader reads it.
func LoadArchive(data []byte, limit int64) (*chart.Chart, error) {
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("chart archive: %d bytes, larger than the limit of %d bytes", len(data), limit)
	}
	if err := CheckArchive(bytes.NewReader(data), limit); err != nil {
		return nil, fmt.Errorf("chart archive: %w", err)
	}
	chrt, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("chart archive: %w", err)
	}
	if err := chrt.Validate(); err != nil {
		return nil, fmt.Errorf("chart archive: %w", err)
	}
	return chrt, nil
}

// CheckArchive reads a gzipped tar and refuses what a chart must not hold:
// entries other than regular files and directories, absolute paths, `..`
// components, entries outside one top directory, more than limit bytes
// uncompressed.
func CheckArchive(r io.Reader, limit int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not gzip: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var total int64
	top := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := h.Name
		if skip, err := checkEntry(h, "chart"); err != nil {
			return err
		} else if skip {
			continue
		}
		if total += entryCost(h); total > limit {
			return fmt.Errorf("more than %d bytes uncompressed", limit)
		}
		clean := path.Clean(name)
		first, _, _ := strings.Cut(clean, "/")
		if first == "." || first == "" {
			return fmt.Errorf("%s: entry outside the chart directory", name)
		}
		if top == "" {
			top = first
		} else if first != top {
			return fmt.Errorf("%s: entry outside the chart directory %s/", name, top)
		}
		if h.Size < 0 || h.Size > limit-total {
			return fmt.Errorf("more than %d bytes uncompressed", limit)
		}
		n, err := io.Copy(io.Discard, io.LimitReader(tr, limit-total+1))
		if err != nil {
			return fmt.Errorf("tar: %s: %w", name, err)
		}
		total += n
		if total > limit {
			return fmt.Errorf("more than %d bytes uncompressed", limit)
		}
	}
	if top == "" {
		return errors.New("empty archive")
	}
	return nil
}

// writeFileAtomic writes data at p so that p is either absent, the old
// content or the whole new content after a crash: temp file, fsync,
// rename, fsync the directory.
func writeFileAtomic(p string, data []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// maxEntryName bounds an archive entry's path (PATH_MAX on Linux).
const maxEntryName = 4096

// entryCost is what an entry counts against an archive's uncompressed
// limit besides its content: its tar header and its name. Without it an
// archive of empty entries with long (PAX) names expands without bound
// under the limit: 300 KiB of gzip held 300 MB of names, and Helm's loader
// keeps every name in memory.
func entryCost(h *tar.Header) int64 { return 512 + int64(len(h.Name)) }

// checkEntry applies the rules every archive entry must pass, in charts and
// OCI sources alike: regular files and directories only (pax headers are
// skipped: skip is true), no links, no absolute or backslashed paths, and no
// ".." element (what names the archive in that error).
func checkEntry(h *tar.Header, what string) (skip bool, err error) {
	name := h.Name
	if len(name) > maxEntryName {
		return false, fmt.Errorf("%.64s…: path of %d bytes, longer than %d", name, len(name), maxEntryName)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeXGlobalHeader, tar.TypeXHeader:
		return true, nil
	case tar.TypeSymlink, tar.TypeLink:
		return false, fmt.Errorf("%s: links are refused (-> %s)", name, h.Linkname)
	default:
		return false, fmt.Errorf("%s: entry type %q is refused", name, h.Typeflag)
	}
	if strings.Contains(name, "\\") || strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return false, fmt.Errorf("%s: absolute or backslashed path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return false, fmt.Errorf("%s: path leaves the %s", name, what)
		}
	}
	return false, nil
}
