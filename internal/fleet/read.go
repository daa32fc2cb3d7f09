package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// DefaultStale is how old a site's latest document may be before the site
// is shown as UNKNOWN: three default heartbeats, so one or two lost
// heartbeats on a flaky link do not flip a healthy site.
const DefaultStale = 3 * DefaultHeartbeat

// Site states in a Fleet.
const (
	StateCurrent = "current" // the document is younger than the stale threshold
	StateUnknown = "unknown" // too old: nothing it says is claimed
	StateError   = "error"   // no readable document
	// StateUntrusted: documents are verified (ReadOptions.Keys) and the
	// latest one is unsigned, signed by a key not trusted for the site,
	// or its signature is of another digest. Nothing it says is claimed.
	StateUntrusted = "untrusted"
)

// ReadOptions configure Read.
type ReadOptions struct {
	// Repository is the sites' parent repository, "host[:port]/path":
	// site s publishes to Repository + "/" + s.
	Repository string
	// Sites lists the sites to read. Empty: list them from the registry's
	// catalog (/v2/_catalog), every repository exactly one path component
	// below Repository.
	Sites []string
	// Insecure talks plain HTTP.
	Insecure bool
	// Keychain resolves credentials; default authn.DefaultKeychain (the
	// docker config).
	Keychain authn.Keychain
	// Transport is the HTTP transport; default a clone of
	// http.DefaultTransport with enough idle connections for Concurrency.
	Transport http.RoundTripper
	// Stale is the age past which a site is StateUnknown; default DefaultStale.
	Stale time.Duration
	// Concurrency is how many sites are read at once; default 16.
	Concurrency int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Keys, when set, verify every site's latest document: one without a
	// valid signature by a key trusted for its site is StateUntrusted.
	// Nil: documents are read unverified (Fleet.Verified is false).
	Keys *Keys
}

// Fleet is what Read found.
type Fleet struct {
	Repository string        `json:"repository"`
	ReadAt     time.Time     `json:"readAt"`
	Stale      time.Duration `json:"staleSeconds"` // written in seconds
	// Verified says whether documents were checked against keys; false:
	// what the sites say was not verified (no --key).
	Verified bool `json:"verified"`
	// Keys describes the keys documents were verified with.
	Keys  string     `json:"keys,omitempty"`
	Sites []SiteView `json:"sites"`
}

// MarshalJSON writes Stale in seconds.
func (f Fleet) MarshalJSON() ([]byte, error) {
	type plain Fleet
	return json.Marshal(struct {
		plain
		Stale int64 `json:"staleSeconds"`
	}{plain(f), int64(f.Stale / time.Second)})
}

// SiteView is one site as the hub sees it. Document is set only for
// StateCurrent; for StateUnknown the last document is kept apart in
// LastKnown, so nothing reading Document can take a silent site as ready.
type SiteView struct {
	Site        string     `json:"site"`
	State       string     `json:"state"` // StateCurrent, StateUnknown or StateError
	PublishedAt *time.Time `json:"publishedAt,omitempty"`
	ChangedAt   *time.Time `json:"changedAt,omitempty"`
	LastLinkAt  *time.Time `json:"lastLinkAt,omitempty"` // the site's last successful upstream fetch
	AgeSeconds  int64      `json:"ageSeconds,omitempty"`
	Error       string     `json:"error,omitempty"`
	SignedBy    string     `json:"signedBy,omitempty"` // the key file that signed the document (Fleet.Verified)
	Document    *Document  `json:"document,omitempty"`
	LastKnown   *Document  `json:"lastKnown,omitempty"`
}

// Age is how old the site's information is (0 when unknown).
func (s SiteView) Age() time.Duration { return time.Duration(s.AgeSeconds) * time.Second }

// Read reads every site's latest document. One site's failure (missing,
// unreadable, malformed) becomes that site's StateError; only failing to
// list the sites fails Read.
func Read(ctx context.Context, o ReadOptions) (*Fleet, error) {
	if o.Stale <= 0 {
		o.Stale = DefaultStale
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.Concurrency
		o.Transport = t
	}
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	parent, err := name.NewRepository(strings.TrimSuffix(o.Repository, "/"), append(nopts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("fleet repository %q: %w", o.Repository, err)
	}
	// One authenticated transport for every site: a ping and (for token
	// registries) a token once, not per site. A token registry that wants
	// more scope answers 401 with it, and the transport asks again.
	auth, err := o.Keychain.Resolve(parent.Registry)
	if err != nil {
		return nil, fmt.Errorf("fleet: credentials for %s: %w", parent.RegistryStr(), err)
	}
	rt, err := transport.NewWithContext(ctx, parent.Registry, auth, o.Transport,
		[]string{parent.Scope(transport.PullScope), "registry:catalog:*"})
	if err != nil {
		return nil, fmt.Errorf("fleet: registry %s: %w", parent.RegistryStr(), err)
	}
	client := &http.Client{Transport: rt}
	sites := o.Sites
	if len(sites) == 0 {
		if sites, err = listSites(ctx, client, parent); err != nil {
			return nil, err
		}
	}
	f := &Fleet{Repository: parent.String(), ReadAt: o.Now().UTC(), Stale: o.Stale, Sites: make([]SiteView, len(sites)),
		Verified: o.Keys != nil}
	if o.Keys != nil {
		f.Keys = o.Keys.Describe()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for i, s := range sites {
		g.Go(func() error {
			f.Sites[i] = readSite(gctx, client, parent, s, f.ReadAt, o.Stale, o.Keys)
			return nil
		})
	}
	_ = g.Wait()
	sort.Slice(f.Sites, func(i, j int) bool { return f.Sites[i].Site < f.Sites[j].Site })
	return f, nil
}

// catalogPage is the page size asked of /v2/_catalog; Distribution's
// default limit is 1000 (ours: internal/registry), some registries less.
const catalogPage = 100

// listSites pages through the registry's catalog and keeps the
// repositories exactly one component below parent.
func listSites(ctx context.Context, client *http.Client, parent name.Repository) ([]string, error) {
	prefix := parent.RepositoryStr() + "/"
	var sites []string
	last := ""
	for page := 0; ; page++ {
		if page > 100000 {
			return nil, errors.New("fleet: registry catalog does not end")
		}
		q := url.Values{"n": {strconv.Itoa(catalogPage)}}
		if last != "" {
			q.Set("last", last)
		}
		u := fmt.Sprintf("%s://%s/v2/_catalog?%s", parent.Scheme(), parent.RegistryStr(), q.Encode())
		b, err := get(ctx, client, u, "application/json", 16<<20)
		if err != nil {
			return nil, fmt.Errorf("fleet: list sites in the catalog of %s (a registry without /v2/_catalog needs --sites): %w",
				parent.RegistryStr(), err)
		}
		var cat struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(b, &cat); err != nil {
			return nil, fmt.Errorf("fleet: catalog of %s: %w", parent.RegistryStr(), err)
		}
		repos := cat.Repositories
		for _, r := range repos {
			if rest, ok := strings.CutPrefix(r, prefix); ok && !strings.Contains(rest, "/") && ValidSiteName(rest) == nil {
				sites = append(sites, rest)
			}
		}
		if len(repos) < catalogPage || repos[len(repos)-1] <= last {
			break
		}
		last = repos[len(repos)-1]
	}
	return sites, nil
}

// readSite reads and judges one site; it never fails, it reports.
func readSite(ctx context.Context, client *http.Client, parent name.Repository, site string, now time.Time, stale time.Duration, keys *Keys) SiteView {
	v := SiteView{Site: site, State: StateError}
	if err := ValidSiteName(site); err != nil {
		v.Error = "site name: " + err.Error()
		return v
	}
	repo := parent.Registry.Repo(parent.RepositoryStr(), site)
	base := fmt.Sprintf("%s://%s/v2/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr())
	m, err := readManifest(ctx, client, base)
	if err != nil {
		v.Error = ClipError(err.Error())
		return v
	}
	published, changed := m.Published, m.Changed
	v.PublishedAt, v.ChangedAt = &published, &changed
	if !m.Link.IsZero() {
		link := m.Link
		v.LastLinkAt = &link
	}
	age := now.Sub(published)
	if age < 0 {
		age = 0 // the site's clock is ahead: say "now", never a negative age
	}
	v.AgeSeconds = int64(age / time.Second)
	doc, err := readDocument(ctx, client, base, m.Layer, m.Size)
	if err != nil {
		v.Error = ClipError(err.Error())
		return v
	}
	if doc.Site != site {
		v.Error = ClipError(fmt.Sprintf("document names site %q, but is in the repository of %q", doc.Site, site))
		return v
	}
	if keys != nil {
		by, err := verifySignature(ctx, client, base, m.Layer, m.Size, keys.For(site))
		if errors.Is(err, errUntrusted) {
			v.State = StateUntrusted
		}
		if err != nil {
			v.Error = ClipError(strings.TrimPrefix(err.Error(), errUntrusted.Error()+": "))
			return v
		}
		v.SignedBy = by
	}
	if age > stale {
		v.State, v.LastKnown = StateUnknown, &doc
		return v
	}
	v.State, v.Document = StateCurrent, &doc
	return v
}

// readManifest fetches and checks a site's manifest.
func readManifest(ctx context.Context, client *http.Client, base string) (ManifestInfo, error) {
	raw, err := get(ctx, client, base+"/manifests/"+Tag, "application/vnd.oci.image.manifest.v1+json", 64<<10)
	if errors.Is(err, errNotFound) {
		return ManifestInfo{}, fmt.Errorf("no status published yet (%w)", err)
	}
	if err != nil {
		return ManifestInfo{}, err
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return ManifestInfo{}, err
	}
	return m, nil
}

// errNotFound marks a 404.
var errNotFound = errors.New("not found")

// get GETs u and returns at most max bytes of a 200 answer's body.
func get(ctx context.Context, client *http.Client, u, accept string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: HTTP 404: %w", u, errNotFound)
	default:
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, max)
	}
	return b, nil
}

// ManifestInfo is what a status manifest says.
type ManifestInfo struct {
	Layer     string    // the document layer's digest, sha256:…
	Size      int64     // its size, 1 to MaxDocumentSize bytes
	Published time.Time // AnnotationPublished
	Changed   time.Time // AnnotationChanged
	Link      time.Time // AnnotationLink; zero when absent
}

// ParseManifest checks a status artifact's manifest (outside input).
func ParseManifest(raw []byte) (ManifestInfo, error) {
	var m manifest
	if len(raw) > 64<<10 {
		return ManifestInfo{}, fmt.Errorf("status manifest: %d bytes, more than %d", len(raw), 64<<10)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return ManifestInfo{}, fmt.Errorf("status manifest: %w", err)
	}
	if m.ArtifactType != ArtifactType {
		return ManifestInfo{}, fmt.Errorf("status manifest: artifactType %q, want %q", clip(m.ArtifactType, 80), ArtifactType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ArtifactType {
		return ManifestInfo{}, fmt.Errorf("status manifest: want one layer of type %s", ArtifactType)
	}
	l := m.Layers[0]
	if !strings.HasPrefix(l.Digest, "sha256:") || !hex64(strings.TrimPrefix(l.Digest, "sha256:")) {
		return ManifestInfo{}, fmt.Errorf("status manifest: layer digest %q is not sha256", clip(l.Digest, 80))
	}
	if l.Size <= 0 || l.Size > MaxDocumentSize {
		return ManifestInfo{}, fmt.Errorf("status manifest: document of %d bytes (1 to %d)", l.Size, MaxDocumentSize)
	}
	info := ManifestInfo{Layer: l.Digest, Size: l.Size}
	var err error
	for _, a := range []struct {
		key      string
		t        *time.Time
		optional bool
	}{{AnnotationPublished, &info.Published, false}, {AnnotationChanged, &info.Changed, false}, {AnnotationLink, &info.Link, true}} {
		v, ok := m.Annotations[a.key]
		if !ok && a.optional {
			continue
		}
		if *a.t, err = time.Parse(time.RFC3339, v); err != nil {
			return ManifestInfo{}, fmt.Errorf("status manifest: annotation %s: %q is not an RFC 3339 time", a.key, clip(v, 40))
		}
		*a.t = a.t.UTC()
	}
	return info, nil
}

func hex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// readDocument fetches the document layer, checks its size and digest,
// and parses it.
func readDocument(ctx context.Context, client *http.Client, base, digest string, size int64) (Document, error) {
	b, err := get(ctx, client, base+"/blobs/"+digest, "", size)
	if err != nil {
		return Document{}, err
	}
	if int64(len(b)) != size {
		return Document{}, fmt.Errorf("document %s: %d bytes, the manifest says %d", digest, len(b), size)
	}
	if "sha256:"+Hash(b) != digest {
		return Document{}, fmt.Errorf("document %s: content does not match its digest", digest)
	}
	return Parse(b)
}
