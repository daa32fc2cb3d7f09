package transfer

import (
	"context"
	"strconv"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RegistryPresence answers bundle.Presence for every repository of one
// registry (e.g. the edge registry, for verify), with HEAD requests for
// blobs and tags.
type RegistryPresence struct {
	registry string
	opts     []RemoteOption
	mu       sync.Mutex
	repos    map[string]*Remote
}

// NewRegistryPresence returns a Presence for registry host[:port].
func NewRegistryPresence(registry string, opts ...RemoteOption) *RegistryPresence {
	return &RegistryPresence{registry: registry, opts: opts, repos: map[string]*Remote{}}
}

func (p *RegistryPresence) repo(name string) (*Remote, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.repos[name]; ok {
		return r, nil
	}
	r, err := NewRemote(p.registry+"/"+name, p.opts...)
	if err != nil {
		return nil, err
	}
	p.repos[name] = r
	return r, nil
}

// Manifest implements bundle.Presence.
func (p *RegistryPresence) Manifest(ctx context.Context, repo string, d v1.Hash) ([]byte, error) {
	r, err := p.repo(repo)
	if err != nil {
		return nil, err
	}
	return r.FetchManifest(ctx, v1.Descriptor{Digest: d})
}

// BlobSize implements bundle.Presence.
func (p *RegistryPresence) BlobSize(ctx context.Context, repo string, d v1.Hash) (int64, error) {
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

// Tag implements bundle.Presence.
func (p *RegistryPresence) Tag(ctx context.Context, repo, tag string) (v1.Hash, error) {
	r, err := p.repo(repo)
	if err != nil {
		return v1.Hash{}, err
	}
	d, err := r.Resolve(ctx, tag)
	return d.Digest, err
}
