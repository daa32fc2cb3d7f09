package charts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/registry"
)

// SourceLayerMediaTypes are the layer media types Argo CD's repo-server
// accepts in an OCI source by default (--oci-layer-media-types).
var SourceLayerMediaTypes = []string{
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	registry.ChartLayerMediaType,
}

// FetchSource fetches an Argo CD OCI source (Argo CD 3.1+: repoURL
// oci://host/repo, targetRevision a tag, a digest or a semver range over
// the tags): its manifest must have exactly one layer of a type in
// SourceLayerMediaTypes, which is extracted into a new temporary directory
// (a Helm chart layer without its top directory, so path "." is the chart).
// The caller removes dir with cleanup. Resolved.Digest is the manifest
// digest, Resolved.Version the tag (or digest) used.
func (f *Fetcher) FetchSource(ctx context.Context, repoURL, revision string) (dir string, res Resolved, cleanup func(), err error) {
	label := "OCI source " + repoURL
	base := strings.TrimSuffix(strings.TrimPrefix(repoURL, "oci://"), "/")
	var nopts []name.Option
	if f.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	repoName, err := name.NewRepository(base, append(nopts, name.StrictValidation)...)
	if err != nil {
		return "", Resolved{}, nil, fmt.Errorf("%s: not an OCI repository: %w", label, err)
	}
	opts := f.remoteOptions(ctx)
	var ref name.Reference
	version := revision
	isRange := false
	switch {
	case strings.HasPrefix(revision, "sha256:"):
		d, err := name.NewDigest(repoName.String()+"@"+revision, nopts...)
		if err != nil {
			return "", Resolved{}, nil, fmt.Errorf("%s: targetRevision %q: %w", label, revision, err)
		}
		ref = d
	case revision != "" && !exactVersion(revision) && isConstraint(revision):
		isRange = true
		tags, err := remote.List(repoName, opts...)
		if err != nil {
			return "", Resolved{}, nil, f.ociErr(Ref{RepoURL: repoURL, TargetRevision: revision}, "list tags of "+repoName.String(), err)
		}
		if version, err = maxMatching(tags, revision); err != nil {
			return "", Resolved{}, nil, fmt.Errorf("%s: %w", label, err)
		}
		ref = repoName.Tag(strings.ReplaceAll(version, "+", "_"))
	default:
		if revision == "" {
			version = "latest"
		}
		ref = repoName.Tag(version)
	}
	rref := Ref{RepoURL: repoURL, TargetRevision: revision}
	// A digest or an exact version the cache has is used without network;
	// another tag (it may move) comes from the cache only when the registry
	// is unreachable; a range is always resolved against the registry.
	immutable := strings.HasPrefix(version, "sha256:") || exactVersion(version)
	var ent *sourceEntry
	var data []byte
	if immutable {
		ent, data = f.sourceFromCache(repoURL, version)
	}
	cached := ent != nil
	if !cached {
		ent, data, err = f.pullSource(ctx, label, rref, repoName, ref, opts)
		if err != nil && !isRange && errors.Is(err, ErrUnavailable) {
			if ent, data = f.sourceFromCache(repoURL, version); ent != nil {
				f.log().Warn("registry unreachable: OCI source from the cache", "repo", repoURL, "tag", version, "err", err)
				cached, err = true, nil
			}
		}
		if err != nil {
			return "", Resolved{}, nil, err
		}
		if !isRange && !cached {
			f.sourceToCache(repoURL, version, ent, data)
		}
	}
	dir, err = os.MkdirTemp("", "ballast-oci-source-*")
	if err != nil {
		return "", Resolved{}, nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	var r io.Reader = bytes.NewReader(data)
	if strings.HasSuffix(ent.LayerMediaType, "+gzip") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			cleanup()
			return "", Resolved{}, nil, fmt.Errorf("%s: %s: layer %s: not gzip: %w", label, ref, ent.LayerDigest, err)
		}
		defer gz.Close()
		r = gz
	}
	strip := ent.LayerMediaType == registry.ChartLayerMediaType
	if err := Extract(r, dir, f.maxChart(), strip); err != nil {
		cleanup()
		return "", Resolved{}, nil, fmt.Errorf("%s: %s: layer %s: %w", label, ref, ent.LayerDigest, err)
	}
	from := "oci://" + ref.String()
	if cached {
		from = ""
	}
	res = Resolved{RepoURL: repoURL, TargetRevision: revision, Version: version,
		Digest: ent.Manifest, Size: ent.ManifestSize, URL: from, Cached: cached,
		Manifest: ent.Manifest, ArtifactType: ent.ArtifactType}
	f.record(res)
	return dir, res, cleanup, nil
}

// sourceEntry is what the cache keeps of an OCI source beside its layer.
type sourceEntry struct {
	Manifest       string `json:"manifest"`
	ManifestSize   int64  `json:"manifestSize"`
	ArtifactType   string `json:"artifactType"`
	LayerMediaType string `json:"layerMediaType"`
	LayerDigest    string `json:"layerDigest"`
	LayerSize      int64  `json:"layerSize"`
}

// pullSource gets the manifest ref names and its one layer, checked.
func (f *Fetcher) pullSource(ctx context.Context, label string, rref Ref, repoName name.Repository, ref name.Reference, opts []remote.Option) (*sourceEntry, []byte, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, nil, f.ociErr(rref, "get "+ref.String(), err)
	}
	if desc.MediaType.IsIndex() {
		return nil, nil, fmt.Errorf("%s: %s is an index, Argo CD expects a manifest with one layer", label, ref)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, nil, fmt.Errorf("%s: %s: manifest: %w", label, ref, err)
	}
	var layers []v1.Descriptor
	for _, l := range m.Layers {
		for _, t := range SourceLayerMediaTypes {
			if string(l.MediaType) == t {
				layers = append(layers, l)
			}
		}
	}
	if len(layers) != 1 {
		return nil, nil, fmt.Errorf("%s: %s: %d layers of the types Argo CD accepts (%s), want exactly one",
			label, ref, len(layers), strings.Join(SourceLayerMediaTypes, ", "))
	}
	layer := layers[0]
	if layer.Size > f.maxChart() {
		return nil, nil, fmt.Errorf("%s: %s: layer of %d bytes, larger than the limit of %d bytes", label, ref, layer.Size, f.maxChart())
	}
	l, err := remote.Layer(repoName.Digest(layer.Digest.String()), opts...)
	if err != nil {
		return nil, nil, f.ociErr(rref, "layer "+layer.Digest.String(), err)
	}
	rc, err := l.Compressed() // checks the digest before EOF
	if err != nil {
		return nil, nil, f.ociErr(rref, "layer "+layer.Digest.String(), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, layer.Size+1))
	if err != nil {
		return nil, nil, f.ociErr(rref, "layer "+layer.Digest.String(), err)
	}
	if int64(len(data)) != layer.Size || sha256Of(data) != layer.Digest.String() {
		return nil, nil, fmt.Errorf("%s: %s: layer %s: %d bytes that do not match the manifest", label, ref, layer.Digest, len(data))
	}
	return &sourceEntry{Manifest: desc.Digest.String(), ManifestSize: desc.Size, ArtifactType: string(m.Config.MediaType),
		LayerMediaType: string(layer.MediaType), LayerDigest: layer.Digest.String(), LayerSize: layer.Size}, data, nil
}

// sourcePaths are the cache files of an OCI source at a tag or digest.
func (f *Fetcher) sourcePaths(repoURL, version string) (entry, blobDir string) {
	dir := filepath.Join(f.CacheDir, repoKey(repoURL), "sources")
	return filepath.Join(dir, strings.ReplaceAll(version, ":", "-")+".json"), filepath.Join(dir, "blobs")
}

// sourceFromCache returns the cached entry and layer of an OCI source at
// a tag or digest, checked against its digest; nil when absent or bad.
func (f *Fetcher) sourceFromCache(repoURL, version string) (*sourceEntry, []byte) {
	if f.CacheDir == "" || !ociTagOrDigest(version) {
		return nil, nil
	}
	entryPath, blobDir := f.sourcePaths(repoURL, version)
	raw, err := readLimited(entryPath, 64<<10)
	if err != nil {
		return nil, nil
	}
	var e sourceEntry
	if err := json.Unmarshal(raw, &e); err != nil || !strings.HasPrefix(e.LayerDigest, "sha256:") ||
		(strings.HasPrefix(version, "sha256:") && e.Manifest != version) {
		return nil, nil
	}
	data, err := readLimited(filepath.Join(blobDir, strings.TrimPrefix(e.LayerDigest, "sha256:")), f.maxChart())
	if err != nil || sha256Of(data) != e.LayerDigest {
		return nil, nil
	}
	f.log().Debug("OCI source from cache", "repo", repoURL, "version", version)
	return &e, data
}

func (f *Fetcher) sourceToCache(repoURL, version string, e *sourceEntry, data []byte) {
	if f.CacheDir == "" || !ociTagOrDigest(version) {
		return
	}
	entryPath, blobDir := f.sourcePaths(repoURL, version)
	raw, err := json.Marshal(e)
	if err == nil {
		// The layer first: an entry is only written once its layer is there.
		err = writeFileAtomic(filepath.Join(blobDir, strings.TrimPrefix(e.LayerDigest, "sha256:")), data)
	}
	if err == nil {
		err = writeFileAtomic(entryPath, raw)
	}
	if err != nil {
		f.log().Warn("chart cache: OCI source not saved", "repo", repoURL, "err", err)
	}
}

var tagOrDigestRE = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|sha256:[0-9a-f]{64})$`)

// ociTagOrDigest reports whether s can name a cache file safely.
func ociTagOrDigest(s string) bool { return tagOrDigestRE.MatchString(s) }

func isConstraint(s string) bool {
	_, err := semver.NewConstraint(s)
	return err == nil
}

// Extract writes a tar stream into dir (which must exist): only regular
// files and directories, no absolute paths or `..`, at most limit bytes in
// all. With stripTop every entry must sit under one top directory, which
// is left out (a Helm chart archive).
func Extract(r io.Reader, dir string, limit int64, stripTop bool) error {
	tr := tar.NewReader(r)
	var total int64
	top := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := h.Name
		if skip, err := checkEntry(h, "archive"); err != nil {
			return err
		} else if skip {
			continue
		}
		if total += entryCost(h); total > limit {
			return fmt.Errorf("more than %d bytes uncompressed", limit)
		}
		rel := path.Clean(name)
		if stripTop {
			first, rest, _ := strings.Cut(rel, "/")
			if top == "" {
				top = first
			} else if first != top {
				return fmt.Errorf("%s: entry outside the chart directory %s/", name, top)
			}
			rel = rest
		}
		if rel == "" || rel == "." {
			continue
		}
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		}
		if h.Size < 0 || h.Size > limit-total {
			return fmt.Errorf("more than %d bytes uncompressed", limit)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n, err := io.Copy(out, io.LimitReader(tr, h.Size))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		total += n
	}
}
