package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Cross-repository mounts without "from". Distribution stores every blob
// once and gives each repository only a link to it, but it mounts a blob
// into a repository only when the client names a repository that already
// links it (?mount=<digest>&from=<repo>). The OCI distribution spec lets a
// registry mount when "from" is absent too, if it holds the blob anywhere.
// The edge registry does: POST /v2/<name>/blobs/uploads/?mount=<digest>
// without from links the blob into <name> when its data is in storage
// (whichever repository brought it, even one since deleted, as long as
// garbage collection has not removed the data) and answers 201, so sync and
// import never fetch a blob the site already holds. Otherwise the request
// goes on to Distribution, which opens an upload session (202) as usual.
//
// Mounts are writes: they pass the write credentials and the read-only
// switch first, so a garbage collection never sweeps a blob while it is
// being linked.

// linkAnywhere serves mount-without-from requests in front of next.
type linkAnywhere struct {
	next http.Handler
	open func(ctx context.Context) (distribution.Namespace, error)

	once sync.Once
	ns   distribution.Namespace
	err  error
}

func (l *linkAnywhere) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mount := q.Get("mount")
	if r.Method != http.MethodPost || mount == "" || q.Get("from") != "" {
		l.next.ServeHTTP(w, r)
		return
	}
	name, route, ok := splitRepoPath(r.URL.Path)
	if !ok || (route != "blobs/uploads/" && route != "blobs/uploads") {
		l.next.ServeHTTP(w, r)
		return
	}
	dgst, err := digest.Parse(mount)
	if err != nil {
		l.next.ServeHTTP(w, r) // Distribution answers a bad digest
		return
	}
	desc, linked, err := l.link(r.Context(), name, dgst)
	if err != nil || !linked {
		l.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/v2/%s/blobs/%s", name, desc.Digest))
	w.Header().Set("Content-Length", "0")
	w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	w.WriteHeader(http.StatusCreated)
}

// namespace opens the storage's namespace once, for every later call.
func (l *linkAnywhere) namespace(ctx context.Context) (distribution.Namespace, error) {
	l.once.Do(func() { l.ns, l.err = l.open(context.WithoutCancel(ctx)) })
	return l.ns, l.err
}

// holds reports whether the storage holds blob dgst's data, under any
// repository.
func (l *linkAnywhere) holds(ctx context.Context, dgst digest.Digest) (bool, error) {
	ns, err := l.namespace(ctx)
	if err != nil {
		return false, err
	}
	_, err = ns.BlobStatter().Stat(ctx, dgst)
	if errors.Is(err, distribution.ErrBlobUnknown) {
		return false, nil
	}
	return err == nil, err
}

// HoldsBlob reports whether the registry's storage holds the blob of
// digest dgst ("sha256:…"), under any repository (then a copy links it
// instead of fetching it: sync asks before fetching hinted blobs). It
// reads the storage directly, no request.
func (r *Registry) HoldsBlob(ctx context.Context, dgst string) (bool, error) {
	d, err := digest.Parse(dgst)
	if err != nil {
		return false, fmt.Errorf("blob %q: %w", dgst, err)
	}
	return r.link.holds(ctx, d)
}

// errFound stops an enumeration at its first item.
var errFound = errors.New("found")

// HoldsContent reports whether repository name of the registry's storage
// holds anything: a blob linked into it (a layer, config or chart of a
// manifest synced, imported or pushed there, whole or in part) or a tag.
// A repository that does not exist holds nothing. Sync asks it of a
// bundle repository before reading a delta index: a delta's base is a
// blob of an earlier revision of the same repository, so with nothing of
// them on site no delta can apply. It reads the storage directly, no
// request.
func (r *Registry) HoldsContent(ctx context.Context, name string) (bool, error) {
	return r.link.holdsContent(ctx, name)
}

func (l *linkAnywhere) holdsContent(ctx context.Context, name string) (bool, error) {
	ns, err := l.namespace(ctx)
	if err != nil {
		return false, err
	}
	named, err := reference.WithName(name)
	if err != nil {
		return false, fmt.Errorf("repository %q: %w", name, err)
	}
	repo, err := ns.Repository(ctx, named)
	if err != nil {
		return false, err
	}
	en, ok := repo.Blobs(ctx).(distribution.BlobEnumerator)
	if !ok {
		return false, errors.New("registry: the storage cannot list a repository's blobs")
	}
	found := false
	err = en.Enumerate(ctx, func(digest.Digest) error {
		found = true
		return errFound // the storage driver wraps it: found tells
	})
	var notFound storagedriver.PathNotFoundError
	switch {
	case found:
		return true, nil
	case err != nil && !errors.As(err, &notFound):
		return false, fmt.Errorf("list blobs of %s: %w", name, err)
	}
	// A bundle index written before bundle repositories linked their
	// images' blobs is a tag without blobs.
	tags, err := repo.Tags(ctx).All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &notFound) || errors.As(err, &unknown) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list tags of %s: %w", name, err)
	}
	return len(tags) > 0, nil
}

// link links blob dgst into repository name if the storage holds its data.
func (l *linkAnywhere) link(ctx context.Context, name string, dgst digest.Digest) (v1.Descriptor, bool, error) {
	ns, err := l.namespace(ctx)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	stat, err := ns.BlobStatter().Stat(ctx, dgst)
	if errors.Is(err, distribution.ErrBlobUnknown) {
		return v1.Descriptor{}, false, nil
	}
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	named, err := reference.WithName(name)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	canonical, err := reference.WithDigest(named, dgst)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	repo, err := ns.Repository(ctx, named)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	_, err = repo.Blobs(ctx).Create(ctx, mountStat(canonical, stat))
	var mounted distribution.ErrBlobMounted
	if errors.As(err, &mounted) {
		return mounted.Descriptor, true, nil
	}
	if err == nil {
		return v1.Descriptor{}, false, errors.New("registry: mount opened an upload session")
	}
	return v1.Descriptor{}, false, err
}

// mountStat is a create option that links a blob whose descriptor is
// already known (Distribution then skips looking it up in a source
// repository).
func mountStat(ref reference.Canonical, stat v1.Descriptor) distribution.BlobCreateOption {
	return mountOption{ref: ref, stat: stat}
}

type mountOption struct {
	ref  reference.Canonical
	stat v1.Descriptor
}

func (o mountOption) Apply(v any) error {
	opts, ok := v.(*distribution.CreateOptions)
	if !ok {
		return fmt.Errorf("unexpected options type: %T", v)
	}
	opts.Mount.ShouldMount = true
	opts.Mount.From = o.ref
	opts.Mount.Stat = &o.stat
	return nil
}
