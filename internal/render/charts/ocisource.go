package charts

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
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
	opts := []remote.Option{remote.WithContext(ctx)}
	if f.Client != nil && f.Client.Transport != nil {
		opts = append(opts, remote.WithTransport(f.Client.Transport))
	}
	var ref name.Reference
	version := revision
	switch {
	case strings.HasPrefix(revision, "sha256:"):
		d, err := name.NewDigest(repoName.String()+"@"+revision, nopts...)
		if err != nil {
			return "", Resolved{}, nil, fmt.Errorf("%s: targetRevision %q: %w", label, revision, err)
		}
		ref = d
	case revision != "" && !exactVersion(revision) && isConstraint(revision):
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
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return "", Resolved{}, nil, f.ociErr(rref, "get "+ref.String(), err)
	}
	if desc.MediaType.IsIndex() {
		return "", Resolved{}, nil, fmt.Errorf("%s: %s is an index, Argo CD expects a manifest with one layer", label, ref)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return "", Resolved{}, nil, fmt.Errorf("%s: %s: manifest: %w", label, ref, err)
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
		return "", Resolved{}, nil, fmt.Errorf("%s: %s: %d layers of the types Argo CD accepts (%s), want exactly one",
			label, ref, len(layers), strings.Join(SourceLayerMediaTypes, ", "))
	}
	layer := layers[0]
	if layer.Size > f.maxChart() {
		return "", Resolved{}, nil, fmt.Errorf("%s: %s: layer of %d bytes, larger than the limit of %d bytes", label, ref, layer.Size, f.maxChart())
	}
	l, err := remote.Layer(repoName.Digest(layer.Digest.String()), opts...)
	if err != nil {
		return "", Resolved{}, nil, f.ociErr(rref, "layer "+layer.Digest.String(), err)
	}
	rc, err := l.Compressed() // checks the digest before EOF
	if err != nil {
		return "", Resolved{}, nil, f.ociErr(rref, "layer "+layer.Digest.String(), err)
	}
	defer rc.Close()
	dir, err = os.MkdirTemp("", "ballast-oci-source-*")
	if err != nil {
		return "", Resolved{}, nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	var r io.Reader = io.LimitReader(rc, layer.Size)
	if strings.HasSuffix(string(layer.MediaType), "+gzip") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			cleanup()
			return "", Resolved{}, nil, fmt.Errorf("%s: %s: layer %s: not gzip: %w", label, ref, layer.Digest, err)
		}
		defer gz.Close()
		r = gz
	}
	strip := string(layer.MediaType) == registry.ChartLayerMediaType
	if err := Extract(r, dir, f.maxChart(), strip); err != nil {
		cleanup()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return "", Resolved{}, nil, f.ociErr(rref, "layer "+layer.Digest.String(), err)
		}
		return "", Resolved{}, nil, fmt.Errorf("%s: %s: layer %s: %w", label, ref, layer.Digest, err)
	}
	res = Resolved{RepoURL: repoURL, TargetRevision: revision, Version: version,
		Digest: desc.Digest.String(), Size: desc.Size, URL: "oci://" + ref.String(),
		Manifest: desc.Digest.String(), ArtifactType: string(m.Config.MediaType)}
	f.record(res)
	return dir, res, cleanup, nil
}

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
