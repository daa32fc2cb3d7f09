package registryclient

import (
	"context"
	"strconv"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Presence answers what a store holds (the shape of bundle.Presence: raw
// manifests by digest, blob sizes, tags) for every repository of one
// registry (e.g. the edge registry, for verify), with HEAD requests for
// blobs and tags. Absent content is an error wrapping oci.ErrNotFound.
type Presence struct {
	registry string
	opts     []Option
	mu       sync.Mutex
	repos    map[string]*Remote
}

// NewPresence returns a Presence for registry host[:port]. It does not
// touch the network.
func NewPresence(registry string, opts ...Option) *Presence {
	return &Presence{registry: registry, opts: opts, repos: map[string]*Remote{}}
}

func (p *Presence) repo(name string) (*Remote, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.repos[name]; ok {
		return r, nil
	}
	r, err := New(p.registry+"/"+name, p.opts...)
	if err != nil {
		return nil, err
	}
	p.repos[name] = r
	return r, nil
}

// Manifest returns the raw manifest d of repo.
func (p *Presence) Manifest(ctx context.Context, repo string, d v1.Hash) ([]byte, error) {
	r, err := p.repo(repo)
	if err != nil {
		return nil, err
	}
	return r.FetchManifest(ctx, v1.Descriptor{Digest: d})
}

// BlobSize returns the size of blob d in repo, from a HEAD request.
func (p *Presence) BlobSize(ctx context.Context, repo string, d v1.Hash) (int64, error) {
	r, err := p.repo(repo)
	if err != nil {
		return 0, err
	}
	resp, err := r.head(ctx, "blobs", d.String())
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return resp.ContentLength, nil
	}
	return n, nil
}

// Tag returns the digest tag points to in repo.
func (p *Presence) Tag(ctx context.Context, repo, tag string) (v1.Hash, error) {
	r, err := p.repo(repo)
	if err != nil {
		return v1.Hash{}, err
	}
	d, err := r.Resolve(ctx, tag)
	return d.Digest, err
}
