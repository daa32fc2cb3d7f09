package charts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"helm.sh/helm/v3/pkg/registry"
)

// ociRepo returns the OCI repository of the chart: <repoURL>/<chart>.
func ociRepo(ref Ref, insecure bool) (name.Repository, error) {
	base := strings.TrimSuffix(strings.TrimPrefix(ref.RepoURL, "oci://"), "/")
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(base+"/"+ref.Chart, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%s: not an OCI repository: %w", ref, err)
	}
	return r, nil
}

// fetchOCI resolves ref against the repository's tags (Helm writes `+` in
// versions as `_` in tags) and pulls the chart layer of the manifest.
func (f *Fetcher) fetchOCI(ctx context.Context, ref Ref) ([]byte, Resolved, error) {
	repoName, err := ociRepo(ref, f.Insecure)
	if err != nil {
		return nil, Resolved{}, err
	}
	opts := f.remoteOptions(ctx)
	version := strings.TrimPrefix(ref.TargetRevision, "v")
	if exactVersion(ref.TargetRevision) {
		if data, res, ok := f.fromCache(ref, version); ok {
			return data, res, nil
		}
	} else {
		tags, err := remote.List(repoName, opts...)
		if err != nil {
			return nil, Resolved{}, f.ociErr(ref, "list tags of "+repoName.String(), err)
		}
		if version, err = maxMatching(tags, ref.TargetRevision); err != nil {
			return nil, Resolved{}, fmt.Errorf("%s: %s: %w", ref, repoName, err)
		}
		if data, res, ok := f.fromCache(ref, version); ok {
			return data, res, nil
		}
	}
	tagRef := repoName.Tag(strings.ReplaceAll(version, "+", "_"))
	desc, err := remote.Get(tagRef, opts...)
	if err != nil {
		return nil, Resolved{}, f.ociErr(ref, "get "+tagRef.String(), err)
	}
	if desc.MediaType.IsIndex() {
		return nil, Resolved{}, fmt.Errorf("%s: %s is an image index, not a Helm chart", ref, tagRef)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, Resolved{}, fmt.Errorf("%s: %s: manifest: %w", ref, tagRef, err)
	}
	if m.Config.MediaType != registry.ConfigMediaType {
		return nil, Resolved{}, fmt.Errorf("%s: %s: config media type %q, not a Helm chart (%s)", ref, tagRef, m.Config.MediaType, registry.ConfigMediaType)
	}
	var layer *v1.Descriptor
	for i, l := range m.Layers {
		if l.MediaType == registry.ChartLayerMediaType || l.MediaType == registry.LegacyChartLayerMediaType {
			layer = &m.Layers[i]
			break
		}
	}
	if layer == nil {
		return nil, Resolved{}, fmt.Errorf("%s: %s: no layer of media type %s", ref, tagRef, registry.ChartLayerMediaType)
	}
	if layer.Size > f.maxChart() {
		return nil, Resolved{}, fmt.Errorf("%s: %s: chart layer of %d bytes, larger than the limit of %d bytes", ref, tagRef, layer.Size, f.maxChart())
	}
	l, err := remote.Layer(repoName.Digest(layer.Digest.String()), opts...)
	if err != nil {
		return nil, Resolved{}, f.ociErr(ref, "layer "+layer.Digest.String(), err)
	}
	// The remote layer's reader checks the digest before it returns EOF.
	rc, err := l.Compressed()
	if err != nil {
		return nil, Resolved{}, f.ociErr(ref, "layer "+layer.Digest.String(), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, layer.Size+1))
	if err != nil {
		return nil, Resolved{}, f.ociErr(ref, "layer "+layer.Digest.String(), err)
	}
	if int64(len(data)) != layer.Size {
		return nil, Resolved{}, fmt.Errorf("%s: %s: chart layer is %d bytes, the manifest says %d", ref, tagRef, len(data), layer.Size)
	}
	from := "oci://" + tagRef.String()
	res := resolvedOf(ref, version, data, from, false)
	res.Manifest, res.ArtifactType = desc.Digest.String(), string(m.Config.MediaType)
	if res.Digest != layer.Digest.String() {
		return nil, Resolved{}, fmt.Errorf("%s: %s: chart layer digest %s, the manifest says %s", ref, tagRef, res.Digest, layer.Digest)
	}
	return data, res, nil
}

// maxMatching returns the newest tag that is a semver version matching
// constraint (empty: any stable version), as Argo CD resolves OCI chart
// ranges.
func maxMatching(tags []string, constraint string) (string, error) {
	if constraint == "" {
		constraint = "*"
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return "", fmt.Errorf("targetRevision %q is neither a version nor a range: %w", constraint, err)
	}
	var best *semver.Version
	bestTag := ""
	for _, t := range tags {
		v, err := semver.NewVersion(strings.ReplaceAll(t, "_", "+"))
		if err != nil || !c.Check(v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestTag = v, strings.ReplaceAll(t, "_", "+")
		}
	}
	if best == nil {
		return "", fmt.Errorf("no tag matches %q (%d tags)", constraint, len(tags))
	}
	return bestTag, nil
}

// ociErr classes a registry error: 404/401/403/400 answers are about the
// input, the rest (connection failures, 5xx) wrap ErrUnavailable.
func (f *Fetcher) ociErr(ref Ref, what string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode < 500 && te.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("%s: %s: %w", ref, what, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %s: %w: %w", ref, what, ErrUnavailable, err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("%s: %s: %w: %w", ref, what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %s: %w", ref, what, err)
}
