package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci"
)

type key struct{ repo, ref string }

type result struct {
	size   int64
	digest v1.Hash
	err    error
}

// errPending stands for a lookup recorded for later; it makes the first
// walk count the item missing, which the second walk corrects.
var errPending = fmt.Errorf("pending: %w", oci.ErrNotFound)

// cachingPresence answers bundle.Presence from a cache. While recording,
// manifests are fetched for real (the walk needs them) and blob and tag
// lookups are only noted; resolve then does them in parallel.
type cachingPresence struct {
	real       bundle.Presence
	bundleRepo string
	recording  bool

	mu        sync.Mutex
	manifests map[key][]byte
	blobs     map[key]result
	tags      map[key]result
}

func (c *cachingPresence) Manifest(ctx context.Context, repo string, d v1.Hash) ([]byte, error) {
	k := key{repo, d.String()}
	c.mu.Lock()
	raw, ok := c.manifests[k]
	c.mu.Unlock()
	if ok {
		return raw, nil
	}
	raw, err := c.real.Manifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.manifests[k] = raw
	c.mu.Unlock()
	return raw, nil
}

func (c *cachingPresence) BlobSize(_ context.Context, repo string, d v1.Hash) (int64, error) {
	k := key{repo, d.String()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.blobs[k]; ok && !c.recording {
		return r.size, r.err
	}
	if c.recording {
		c.blobs[k] = result{err: errPending}
		return 0, errPending
	}
	return 0, fmt.Errorf("blob %s@%s: not looked up", repo, d)
}

func (c *cachingPresence) Tag(ctx context.Context, repo, tag string) (v1.Hash, error) {
	k := key{repo, tag}
	c.mu.Lock()
	r, ok := c.tags[k]
	c.mu.Unlock()
	if ok && (!c.recording || r.err != errPending) {
		return r.digest, r.err
	}
	// The bundle index's tag decides what the walk reads: look it up now.
	if repo == c.bundleRepo {
		h, err := c.real.Tag(ctx, repo, tag)
		if err != nil && !errors.Is(err, oci.ErrNotFound) {
			return h, err
		}
		c.mu.Lock()
		c.tags[k] = result{digest: h, err: err}
		c.mu.Unlock()
		return h, err
	}
	if c.recording {
		c.mu.Lock()
		c.tags[k] = result{err: errPending}
		c.mu.Unlock()
		return v1.Hash{}, errPending
	}
	return v1.Hash{}, fmt.Errorf("tag %s:%s: not looked up", repo, tag)
}

// resolve performs every recorded blob and tag lookup, n at a time.
func (c *cachingPresence) resolve(ctx context.Context, n int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	c.mu.Lock()
	var blobKeys, tagKeys []key
	for k, r := range c.blobs {
		if r.err == errPending {
			blobKeys = append(blobKeys, k)
		}
	}
	for k, r := range c.tags {
		if r.err == errPending {
			tagKeys = append(tagKeys, k)
		}
	}
	c.mu.Unlock()
	for _, k := range blobKeys {
		g.Go(func() error {
			h, err := v1.NewHash(k.ref)
			if err != nil {
				return err
			}
			size, err := c.real.BlobSize(gctx, k.repo, h)
			if err != nil && !errors.Is(err, oci.ErrNotFound) {
				return err
			}
			c.mu.Lock()
			c.blobs[k] = result{size: size, err: err}
			c.mu.Unlock()
			return nil
		})
	}
	for _, k := range tagKeys {
		g.Go(func() error {
			h, err := c.real.Tag(gctx, k.repo, k.ref)
			if err != nil && !errors.Is(err, oci.ErrNotFound) {
				return err
			}
			c.mu.Lock()
			c.tags[k] = result{digest: h, err: err}
			c.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// record walks the bundle of revision the way CheckComplete will, images in
// parallel, fetching manifests into the cache and noting every blob and tag
// lookup. What it cannot read is left for the real check to report.
func (c *cachingPresence) record(ctx context.Context, bundleRepo, revision string, sel oci.Platforms, n int) error {
	dig, err := c.Tag(ctx, bundleRepo, revision)
	if errors.Is(err, oci.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	raw, err := c.Manifest(ctx, bundleRepo, dig)
	if errors.Is(err, oci.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, im := range b.Images {
		repo := im.Ref.EdgeRepository()
		g.Go(func() error {
			err := oci.Walk(gctx, repoFetcher{c, repo}, im.Descriptor, sel, func(nd oci.Node) error {
				if nd.Raw == nil {
					c.mu.Lock()
					if _, ok := c.blobs[key{repo, nd.Descriptor.Digest.String()}]; !ok {
						c.blobs[key{repo, nd.Descriptor.Digest.String()}] = result{err: errPending}
					}
					c.mu.Unlock()
				}
				return nil
			})
			if err != nil && !errors.Is(err, oci.ErrNotFound) && ctx.Err() == nil && isTransportError(err) {
				return err
			}
			if im.Ref.Tag != "" {
				c.mu.Lock()
				if _, ok := c.tags[key{repo, im.Ref.Tag}]; !ok {
					c.tags[key{repo, im.Ref.Tag}] = result{err: errPending}
				}
				c.mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// isTransportError tells a registry that cannot be reached from content
// that is bad or absent (which the real check reports).
func isTransportError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// repoFetcher reads manifests of one repository through the cache.
type repoFetcher struct {
	c    *cachingPresence
	repo string
}

func (f repoFetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.c.Manifest(ctx, f.repo, d.Digest)
}
