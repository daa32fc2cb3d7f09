package registryclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/oci"
)

// ErrNoReferrersAPI is returned by Referrers when the registry does not
// serve the OCI 1.1 referrers API (404, 405 or 400 on the route): the
// caller falls back to the referrers tag schema (tag sha256-<hex>).
var ErrNoReferrersAPI = errors.New("registry has no referrers API")

// Referrers lists the manifests whose subject is subject, by the OCI 1.1
// referrers API (GET /v2/<name>/referrers/<digest>): their descriptors as
// the registry's image index gives them (artifactType, annotations). A
// registry without the API is ErrNoReferrersAPI. The answer is bounded by
// oci.MaxManifestSize and parsed by ParseReferrers.
func (r *Remote) Referrers(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, error) {
	req, _ := http.NewRequest(http.MethodGet, r.url("referrers", subject.String()), nil)
	req.Header.Set("Accept", string(types.OCIImageIndex))
	resp, err := r.do(ctx, false, req, http.StatusOK)
	var he *HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusMethodNotAllowed || he.Status == http.StatusBadRequest) {
		return nil, fmt.Errorf("referrers of %s in %s: %w", subject, r.repo, ErrNoReferrersAPI)
	}
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", subject, r.repo, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", subject, r.repo, err)
	}
	ds, err := ParseReferrers(raw)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", subject, r.repo, err)
	}
	return ds, nil
}

// ParseReferrers reads a referrers API answer (an OCI image index) from
// outside input: each entry must be a manifest or index descriptor with a
// valid digest and a size within oci.MaxManifestSize. Bad input is an
// error, never a panic.
func ParseReferrers(raw []byte) ([]v1.Descriptor, error) {
	if len(raw) > oci.MaxManifestSize {
		return nil, fmt.Errorf("referrers index of more than %d bytes", oci.MaxManifestSize)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("referrers index: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("referrers index: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	for i, d := range idx.Manifests {
		if !oci.IsManifest(d.MediaType) && !oci.IsIndex(d.MediaType) {
			return nil, fmt.Errorf("referrers index: manifests[%d]: media type %q is not a manifest", i, d.MediaType)
		}
		if err := oci.CheckDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("referrers index: manifests[%d]: %w", i, err)
		}
		if d.Size <= 0 || d.Size > oci.MaxManifestSize {
			return nil, fmt.Errorf("referrers index: manifests[%d]: size %d out of range", i, d.Size)
		}
	}
	return idx.Manifests, nil
}
