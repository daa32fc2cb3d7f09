package edge

import (
	"context"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/helmrepo"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// HelmPrefix is where the http listener serves the edge's Helm chart
// repositories: /helm/<host>/<path>/index.yaml for the charts on site from
// https://<host>/<path> (docs/charts.md).
const HelmPrefix = "/helm/"

// helmStore reads the bundles complete on site and their content for the
// Helm repository endpoint, in process.
type helmStore struct {
	sync *syncer.Syncer
	tr   http.RoundTripper // the edge registry's in-process transport
}

func (h helmStore) Revisions(ctx context.Context) ([]helmrepo.Revision, error) {
	lbs, err := h.sync.LocalBundles(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]helmrepo.Revision, len(lbs))
	for i, b := range lbs {
		out[i] = helmrepo.Revision{RepoURL: b.RepoURL, Revision: b.Revision, Digest: b.Digest}
	}
	return out, nil
}

func (h helmStore) Bundle(ctx context.Context, r helmrepo.Revision) (*bundle.Bundle, error) {
	return h.sync.CompleteBundle(ctx, r.RepoURL, r.Revision)
}

func (h helmStore) repo(name string) (*registryclient.Remote, error) {
	return registryclient.New("edge.ballast.invalid/"+name, registryclient.WithInsecure(true), registryclient.WithTransport(h.tr),
		registryclient.WithKeychain(authn.NewMultiKeychain()))
}

func (h helmStore) Manifest(ctx context.Context, repo string, d v1.Descriptor) ([]byte, error) {
	r, err := h.repo(repo)
	if err != nil {
		return nil, err
	}
	return r.FetchManifest(ctx, d)
}

func (h helmStore) Blob(ctx context.Context, repo string, d v1.Descriptor) (io.ReadCloser, error) {
	r, err := h.repo(repo)
	if err != nil {
		return nil, err
	}
	return r.OpenBlob(ctx, d, 0)
}
