// Package helmrepo is the edge's Helm chart repository (docs/charts.md):
// for every HTTP(S) Helm repository a chart on site came from, an
// index.yaml and the chart archives, served read-only from the bundles of
// revisions complete on site, so that an Argo CD Application changes only
// its repoURL to http://<edge>:8080/helm/<host>/<path>.
//
// It is edge-safe: no Helm import (the index is plain YAML written from the
// chart's config blob, which is Chart.yaml's metadata as JSON), bounded
// memory (config blobs are capped; the index is built once per set of
// complete revisions and kept as bytes), and every archive byte it serves
// is checked against its digest as it streams.
package helmrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci"
)

// Limits of what one index build reads.
const (
	// MaxConfigSize bounds one chart's config blob (Chart.yaml's metadata
	// as JSON; a few KiB in practice). Larger ones are left out of the
	// index, with a warning.
	MaxConfigSize = 256 << 10
	// MaxIndexBytes bounds the config bytes one build holds at once, across
	// all charts on site. Charts beyond it are left out, with a warning.
	MaxIndexBytes = 64 << 20
	// RecheckIncomplete is how long an index built while some bundle index
	// on site was not complete (content damaged or deleted under it) is
	// kept: sync may make that revision whole again without changing the
	// index's digest, which the cache key would not see.
	RecheckIncomplete = 30 * time.Second
)

// Revision is one bundle index present on site.
type Revision struct {
	RepoURL  string  // the upstream git URL, as in the edge config
	Revision string  // full commit SHA
	Digest   v1.Hash // of the bundle index: part of the cache key
}

// Store is what the endpoint reads. Every method is called with the
// request's context; absent content is an error wrapping oci.ErrNotFound.
type Store interface {
	// Revisions lists the bundle indexes present on site. It is called
	// once per request, so it must be cheap (a tag list per repository).
	Revisions(ctx context.Context) ([]Revision, error)
	// Bundle returns the parsed bundle of r when it is complete on site,
	// nil when it is not.
	Bundle(ctx context.Context, r Revision) (*bundle.Bundle, error)
	// Manifest returns the raw manifest d in edge repository repo.
	Manifest(ctx context.Context, repo string, d v1.Descriptor) ([]byte, error)
	// Blob opens blob d in edge repository repo.
	Blob(ctx context.Context, repo string, d v1.Descriptor) (io.ReadCloser, error)
}

// Handler serves GET and HEAD of /<prefix>/<repo>/index.yaml and
// /<prefix>/<repo>/<name>-<version>.tgz. Build it with New.
type Handler struct {
	store  Store
	log    *slog.Logger
	prefix string

	mu    sync.Mutex // held while building: concurrent requests wait for one build
	key   string
	built *index
	// builds counts index builds (tests check the cache with it).
	builds int
	now    func() time.Time
}

// New returns the endpoint for requests whose path starts with prefix
// (e.g. "/helm/"). log may be nil.
func New(store Store, prefix string, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: store, prefix: prefix, log: log.With("component", "helmrepo"), now: time.Now}
}

// index is every Helm repository on site, rendered.
type index struct {
	repos map[string]*repoIndex // by RepoKey
	// incomplete is set when a listed revision was not complete: the
	// index is then rebuilt after RecheckIncomplete.
	incomplete bool
	at         time.Time
}

type repoIndex struct {
	yaml  []byte
	etag  string
	mod   time.Time
	files map[string]chartFile // by file name
}

type chartFile struct {
	edgeRepo string        // where the edge registry holds the chart
	layer    v1.Descriptor // the archive
}

// ServeHTTP answers GET and HEAD; any other method is 405. Unknown
// repositories and files, and paths ParsePath refuses, are 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), h.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	repo, file, err := ParsePath(rest)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	idx, err := h.index(r.Context())
	if err != nil {
		h.log.Warn("helm repository index", "err", err)
		http.Error(w, "chart index unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	ri := idx.repos[repo]
	if ri == nil {
		http.Error(w, fmt.Sprintf("no charts from Helm repository %s on site", repo), http.StatusNotFound)
		return
	}
	if file == IndexFile {
		w.Header().Set("Content-Type", "application/x-yaml")
		w.Header().Set("ETag", ri.etag)
		http.ServeContent(w, r, "", ri.mod, bytes.NewReader(ri.yaml))
		return
	}
	f, ok := ri.files[file]
	if !ok {
		http.Error(w, fmt.Sprintf("no chart %s in Helm repository %s on site", file, repo), http.StatusNotFound)
		return
	}
	h.serveArchive(w, r, f)
}

func (h *Handler) serveArchive(w http.ResponseWriter, r *http.Request, f chartFile) {
	etag := `"` + f.layer.Digest.String() + `"`
	if match := r.Header.Get("If-None-Match"); match != "" && match == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	// HEAD opens the blob too, so it answers 404 for an archive gone from
	// disk as GET would.
	body, err := h.store.Blob(r.Context(), f.edgeRepo, f.layer)
	if errors.Is(err, oci.ErrNotFound) {
		http.Error(w, "chart archive not on site", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "chart archive unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", strconv.FormatInt(f.layer.Size, 10))
	w.Header().Set("ETag", etag)
	w.Header().Set("Docker-Content-Digest", f.layer.Digest.String())
	if r.Method == http.MethodHead {
		return
	}
	// Not io.Copy: it would write the last chunk before looking at the
	// digest verdict that comes with it. A bad archive is cut short (the
	// status is sent: the connection is aborted), never served whole.
	buf := make([]byte, 32<<10)
	vr := oci.VerifyReader(body, f.layer)
	for {
		n, err := vr.Read(buf)
		if err != nil && err != io.EOF {
			h.log.Warn("helm chart archive not served whole", "repo", f.edgeRepo, "digest", f.layer.Digest, "err", err)
			panic(http.ErrAbortHandler)
		}
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went away
			}
		}
		if err == io.EOF {
			return
		}
	}
}

// index returns the index for the revisions complete on site now,
// building it when that set changed since the last build.
func (h *Handler) index(ctx context.Context) (*index, error) {
	revs, err := h.store.Revisions(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(revs, func(i, j int) bool {
		if revs[i].RepoURL != revs[j].RepoURL {
			return revs[i].RepoURL < revs[j].RepoURL
		}
		return revs[i].Revision < revs[j].Revision
	})
	var kb strings.Builder
	for _, r := range revs {
		kb.WriteString(r.RepoURL + " " + r.Revision + " " + r.Digest.String() + "\n")
	}
	key := kb.String()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.built != nil && h.key == key && (!h.built.incomplete || h.now().Sub(h.built.at) < RecheckIncomplete) {
		return h.built, nil
	}
	idx, err := h.build(ctx, revs)
	if err != nil {
		return nil, err
	}
	h.key, h.built = key, idx
	h.builds++
	return idx, nil
}

// version is one chart version found in a complete bundle.
type version struct {
	repo    string // RepoKey
	name    string
	version string
	file    chartFile
	created time.Time // the bundle's
	meta    map[string]any
}

var chartNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (h *Handler) build(ctx context.Context, revs []Revision) (*index, error) {
	// The newest bundle holding a chart version names its content.
	type found struct {
		im      bundle.Image
		created time.Time
	}
	byKey := map[string]found{}
	var keys []string
	incomplete := false
	for _, rv := range revs {
		b, err := h.store.Bundle(ctx, rv)
		if err != nil {
			return nil, fmt.Errorf("bundle of %s at %s: %w", rv.RepoURL, rv.Revision, err)
		}
		if b == nil {
			incomplete = true
			continue
		}
		for _, im := range b.Images {
			if im.Chart == nil || im.Chart.IsSource() {
				continue
			}
			if _, err := bundle.HelmRepoPath(im.Chart.RepoURL); err != nil {
				continue // an OCI chart: the edge registry serves it
			}
			k := im.Chart.RepoURL + "\x00" + im.Chart.Name + "\x00" + im.Chart.Version
			if f, ok := byKey[k]; ok && !b.Created.After(f.created) {
				continue
			}
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = found{im, b.Created}
		}
	}
	sort.Strings(keys)
	var versions []version
	budget := int64(MaxIndexBytes)
	for _, k := range keys {
		f := byKey[k]
		v, err := h.readVersion(ctx, f.im, &budget)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			h.log.Warn("chart left out of the edge's Helm repository", "chart", f.im.Name(), "err", err)
			continue
		}
		v.created = f.created
		versions = append(versions, v)
	}
	idx, err := render(versions)
	if err != nil {
		return nil, err
	}
	idx.incomplete, idx.at = incomplete, h.now()
	return idx, nil
}

// readVersion reads the chart's manifest and config blob and checks they
// are what a Helm chart in OCI form is, and what the bundle says.
func (h *Handler) readVersion(ctx context.Context, im bundle.Image, budget *int64) (version, error) {
	c := im.Chart
	hrp, _ := bundle.HelmRepoPath(c.RepoURL)
	v := version{repo: RepoKey(hrp), name: c.Name, version: c.Version}
	if !chartNameRE.MatchString(c.Name) {
		return v, fmt.Errorf("chart name %q cannot be a file name", c.Name)
	}
	repo := im.Ref.EdgeRepository()
	raw, err := h.store.Manifest(ctx, repo, im.Descriptor)
	if err != nil {
		return v, err
	}
	if err := oci.VerifyBytes(raw, im.Descriptor); err != nil {
		return v, err
	}
	if !oci.IsManifest(im.Descriptor.MediaType) {
		return v, fmt.Errorf("media type %s is not an image manifest", im.Descriptor.MediaType)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return v, fmt.Errorf("manifest: %w", err)
	}
	if m.Config.MediaType != bundle.HelmConfigMediaType {
		return v, fmt.Errorf("config media type %q, want %s", m.Config.MediaType, bundle.HelmConfigMediaType)
	}
	var layers []v1.Descriptor
	for _, l := range m.Layers {
		if l.MediaType == bundle.HelmChartMediaType {
			layers = append(layers, l)
		}
	}
	if len(layers) != 1 {
		return v, fmt.Errorf("%d layers of type %s, want 1", len(layers), bundle.HelmChartMediaType)
	}
	for _, d := range []v1.Descriptor{m.Config, layers[0]} {
		if err := oci.CheckDigest(d.Digest); err != nil {
			return v, err
		}
		if d.Size <= 0 {
			return v, fmt.Errorf("blob %s: size %d", d.Digest, d.Size)
		}
	}
	if m.Config.Size > MaxConfigSize {
		return v, fmt.Errorf("config blob of %d bytes exceeds %d", m.Config.Size, MaxConfigSize)
	}
	if m.Config.Size > *budget {
		return v, fmt.Errorf("the index already holds %d bytes of chart metadata", MaxIndexBytes)
	}
	*budget -= m.Config.Size
	rc, err := h.store.Blob(ctx, repo, m.Config)
	if err != nil {
		return v, err
	}
	defer rc.Close()
	cfg, err := io.ReadAll(oci.VerifyReader(rc, m.Config))
	if err != nil {
		return v, fmt.Errorf("config blob: %w", err)
	}
	if v.meta, err = Metadata(cfg); err != nil {
		return v, err
	}
	if v.meta["name"] != c.Name || v.meta["version"] != c.Version {
		return v, fmt.Errorf("config names chart %v %v, the bundle %s %s", v.meta["name"], v.meta["version"], c.Name, c.Version)
	}
	v.file = chartFile{edgeRepo: repo, layer: layers[0]}
	return v, nil
}

// Metadata parses a Helm chart's config blob (Chart.yaml's metadata as
// JSON, as `helm push` writes it): a JSON object with string "name" and
// "version". Other fields are kept as they are, for index.yaml. It refuses
// more than MaxConfigSize bytes, trailing data, fields the index sets
// itself (urls, digest, created, removed), nesting deeper than 32 levels,
// and fields that are not Chart.yaml's or of a type Helm cannot read (an
// index holding one such entry is unreadable to Helm as a whole).
func Metadata(raw []byte) (map[string]any, error) {
	if len(raw) > MaxConfigSize {
		return nil, fmt.Errorf("chart metadata: %d bytes exceeds %d", len(raw), MaxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("chart metadata: not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("chart metadata: trailing data after the JSON object")
	}
	if m == nil {
		return nil, errors.New("chart metadata: null")
	}
	for _, f := range []string{"name", "version"} {
		s, ok := m[f].(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("chart metadata: %q missing or not a string", f)
		}
	}
	for _, f := range []string{"urls", "digest", "created", "removed"} {
		if _, ok := m[f]; ok {
			return nil, fmt.Errorf("chart metadata: field %q belongs to the index, not the chart", f)
		}
	}
	if depth(m, maxMetadataDepth) > maxMetadataDepth {
		return nil, fmt.Errorf("chart metadata: nested deeper than %d levels", maxMetadataDepth)
	}
	// Helm reads a whole index.yaml strictly into typed structs
	// (repo.LoadIndexFile: unknown fields are errors): one entry with a
	// field Helm does not know, or of the wrong type, makes the index
	// unreadable, and every chart of that repository with it.
	typed := json.NewDecoder(bytes.NewReader(raw))
	typed.DisallowUnknownFields()
	if err := typed.Decode(&helmMetadata{}); err != nil {
		return nil, fmt.Errorf("chart metadata: not what Helm reads in an index: %w", err)
	}
	if err := survivesYAML(raw, m); err != nil {
		return nil, fmt.Errorf("chart metadata: index.yaml cannot carry it: %w", err)
	}
	return m, nil
}

// survivesYAML checks that m, written as index.yaml writes it (an entry
// under its chart name, which must be the config's name) and read back as
// Helm reads an index (both sigs.k8s.io/yaml), holds the values raw holds.
// YAML cannot carry every JSON string: DEL, C1 controls, U+FFFE and U+FFFF
// fail the writer (and with them the whole index), a key longer than 1024
// characters (an annotation's, or the chart name the entries are keyed by)
// is no YAML key, and NEL inside a key or value reads back as a line
// break. The check is the YAML library itself, so it covers every such
// case, not a list of them.
func survivesYAML(raw []byte, m map[string]any) error {
	name := m["name"].(string)
	out, err := yaml.Marshal(map[string]any{name: []any{m}})
	if err != nil {
		return err
	}
	var back map[string][]any
	if err := yaml.Unmarshal(out, &back); err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	var want any
	if err := json.Unmarshal(raw, &want); err != nil {
		return err
	}
	if len(back[name]) != 1 || !reflect.DeepEqual(back[name][0], want) {
		return errors.New("a value reads back changed (YAML line breaks or characters it folds, or a key too long)")
	}
	return nil
}

// maxMetadataDepth bounds the nesting of a chart's metadata. Chart.yaml's
// deepest field (dependencies[].import-values[].child) is 4 levels; YAML
// writes each level indented further, so 10000 levels (what encoding/json
// allows) would render a 60 KiB config as 100 MB of index, and one more
// level fails the YAML encoder, and with it every repository's index.
const maxMetadataDepth = 32

// depth returns how deeply v nests (a scalar is 0), counting at most to
// limit+1.
func depth(v any, limit int) int {
	var kids []any
	switch x := v.(type) {
	case map[string]any:
		for _, c := range x {
			kids = append(kids, c)
		}
	case []any:
		kids = x
	default:
		return 0
	}
	d := 0
	for _, c := range kids {
		if limit <= 0 {
			return 1
		}
		if cd := depth(c, limit-1); cd > d {
			d = cd
		}
	}
	return d + 1
}

// helmMetadata holds the fields of Helm's chart.Metadata
// (helm.sh/helm/v3/pkg/chart) with the types Helm decodes them into, so a
// config blob that Helm could not read in an index is left out. Matched
// case-insensitively, as Helm's decoder (encoding/json) does. Keep in step
// with the Helm version in go.mod (TestMetadataFieldsAreHelms).
type helmMetadata struct {
	Name         string            `json:"name"`
	Home         string            `json:"home"`
	Sources      []string          `json:"sources"`
	Version      string            `json:"version"`
	Description  string            `json:"description"`
	Keywords     []string          `json:"keywords"`
	Maintainers  []*helmMaintainer `json:"maintainers"`
	Icon         string            `json:"icon"`
	APIVersion   string            `json:"apiVersion"`
	Condition    string            `json:"condition"`
	Tags         string            `json:"tags"`
	AppVersion   string            `json:"appVersion"`
	Deprecated   bool              `json:"deprecated"`
	Annotations  map[string]string `json:"annotations"`
	KubeVersion  string            `json:"kubeVersion"`
	Dependencies []*struct {
		Name         string   `json:"name"`
		Version      string   `json:"version"`
		Repository   string   `json:"repository"`
		Condition    string   `json:"condition"`
		Tags         []string `json:"tags"`
		Enabled      bool     `json:"enabled"`
		ImportValues []any    `json:"import-values"`
		Alias        string   `json:"alias"`
	} `json:"dependencies"`
	Type string `json:"type"`
}

type helmMaintainer struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	URL   string `json:"url"`
}

// render writes one index.yaml per repository: apiVersion v1, entries by
// chart name (newest version first as Helm sorts them on load, here by
// version string), each the chart's metadata plus urls (relative:
// <name>-<version>.tgz), digest (the archive's sha256 hex) and created.
// The same set of charts gives the same bytes.
func render(versions []version) (*index, error) {
	idx := &index{repos: map[string]*repoIndex{}}
	entries := map[string]map[string][]map[string]any{}
	for _, v := range versions {
		ri := idx.repos[v.repo]
		if ri == nil {
			ri = &repoIndex{files: map[string]chartFile{}}
			idx.repos[v.repo] = ri
			entries[v.repo] = map[string][]map[string]any{}
		}
		file := v.name + "-" + v.version + ".tgz"
		if _, dup := ri.files[file]; dup {
			continue // two names for one file (a-1 + 0.1, a + 1-0.1): the first wins
		}
		ri.files[file] = v.file
		e := make(map[string]any, len(v.meta)+3)
		for k, x := range v.meta {
			e[k] = x
		}
		e["urls"] = []string{file}
		e["digest"] = v.file.layer.Digest.Hex
		e["created"] = v.created.UTC().Format(time.RFC3339)
		entries[v.repo][v.name] = append(entries[v.repo][v.name], e)
		if v.created.After(ri.mod) {
			ri.mod = v.created
		}
	}
	for key, ri := range idx.repos {
		for _, vs := range entries[key] {
			sort.SliceStable(vs, func(i, j int) bool { return vs[i]["version"].(string) > vs[j]["version"].(string) })
		}
		doc := map[string]any{"apiVersion": "v1", "entries": entries[key], "generated": ri.mod.UTC().Format(time.RFC3339)}
		raw, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("index of %s: %w", key, err)
		}
		sum := sha256.Sum256(raw)
		ri.yaml, ri.etag = raw, `"`+hex.EncodeToString(sum[:16])+`"`
	}
	return idx, nil
}
