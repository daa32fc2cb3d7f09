package syncer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// claims are the image tags ("edge-repo:tag") that revisions of one
// repository have taken in the edge registry during one pass (or one
// import): a tag taken by the deployed revision or a newer one is not
// moved by an older one.
type claims struct {
	id, bundleRepo string
	// deployed is the deployed revision whose tags were claimed last; an
	// activation between two landings changes it.
	deployed string
	keys     map[string]bool
	// tips are the tracked refs' tip revisions now; wanted the pass's
	// wanted revisions (nil outside a pass).
	tips   []string
	wanted []wantedRev
	// deployedBundle is the bundle of deployed, when its index is on site.
	deployedBundle *bundle.Bundle
	// complete holds the bundles of the revisions found or made complete
	// (claimRepoGitRefs claims their remote bases' refs in wanted order).
	complete map[string]*bundle.Bundle
}

// markComplete notes revision b as complete in this pass.
func (cl *claims) markComplete(b *bundle.Bundle) {
	if cl == nil || b == nil {
		return
	}
	if cl.complete == nil {
		cl.complete = map[string]*bundle.Bundle{}
	}
	cl.complete[b.Revision] = b
}

// claimDeployed lets the revision deployed now claim its tags first (it
// may have changed since the pass started: activation does not wait for
// passes). The caller holds stateMu.
func (s *Syncer) claimDeployed(ctx context.Context, cl *claims) error {
	if s.o.Deployed == nil {
		return nil
	}
	cur := s.o.Deployed.Current(cl.id)
	if cur == "" || cur == cl.deployed {
		return nil
	}
	rep, err := bundle.CheckComplete(ctx, s.presence, layout(cl.bundleRepo, false), cur, s.platforms)
	if err != nil || rep.Bundle == nil {
		return nil // its index is not on site: nothing says which tags are its
	}
	cl.deployed, cl.deployedBundle = cur, rep.Bundle
	if !rep.Complete() {
		// A deployed revision that lost content (a blob deleted or found
		// damaged, being fetched again) still holds its tags: no other
		// revision may move them, or a pass would silently roll the site
		// forward or back. The tags stay where they are; none is written.
		reserveTags(rep.Bundle, cl.keys)
		return nil
	}
	return s.claimTags(ctx, rep.Bundle, cl.keys)
}

// recheckImages names the images whose content a check found missing
// below their manifest: a present root no longer vouches for them.
func recheckImages(rep *bundle.Report) map[string]bool {
	var m map[string]bool
	for _, x := range rep.Missing {
		if x.Image == "" || x.What == "tag" {
			continue
		}
		if m == nil {
			m = map[string]bool{}
		}
		m[x.Image] = true
	}
	return m
}

// reserveTags marks b's image tags as claimed without writing any.
func reserveTags(b *bundle.Bundle, claimed map[string]bool) {
	for _, im := range b.Images {
		if im.Ref.Tag != "" {
			claimed[tagKey(im)] = true
		}
	}
}

// tagKey names an entry's tag in the edge registry ("edge-repo:tag"), the
// key of claims.
func tagKey(im bundle.Image) string { return im.Ref.EdgeRepository() + ":" + im.Ref.Tag }

// Landing is one bundle to land in the edge registry.
type Landing struct {
	// Src holds the images' manifests and blobs (an upstream registry, an
	// OCI image layout of an export file).
	Src transfer.Source
	// BundleRepo is the edge repository of the bundle index
	// (imageref.BundleRepository).
	BundleRepo string
	Bundle     *bundle.Bundle
	// Root and Raw are the bundle index's descriptor and bytes, already
	// verified against each other.
	Root v1.Descriptor
	Raw  []byte
	// Engine copies the images; nil uses the syncer's own (staging dir,
	// link bandwidth limit, retries).
	Engine *transfer.Engine
	// Platforms limits the images' platforms; nil uses the edge's
	// selection. An export file made for some platforms lands those.
	Platforms oci.Platforms
	// Recheck names images (bundle.Image.Ref.String()) whose manifests
	// are on site but content below them is not (a check found a blob
	// or child manifest missing): their copies walk and check everything
	// instead of trusting the present root.
	Recheck map[string]bool
	claims  *claims
	// trusted runs once the trust policy has passed the bundle, before
	// anything of it is copied: what the index asks of other parts (its
	// git dependencies) must not be acted on for a refused bundle.
	trusted func()
}

// Land writes one bundle to the edge in the only order that keeps
// "complete" honest: every image (manifests and blobs, only what is
// missing, in its repository and linked into the bundle repository; the
// blobs the index hints start first), then the image tags by the claim
// rules (the deployed revision and newer ones keep theirs), then the
// bundle index, the commit point. The copy runs without the state lock;
// tags and index take it briefly. It is used by sync passes and by
// import. The returned Stats count the links into the bundle repository
// as mounted blobs.
func (s *Syncer) Land(ctx context.Context, l Landing) (transfer.Stats, error) {
	eng := l.Engine
	if eng == nil {
		eng = s.engine
	}
	plats := l.Platforms
	if plats == nil {
		plats = s.platforms
	}
	// The trust policy first: nothing of a refused bundle is written.
	sig, err := s.trustBundle(ctx, l.Src, l.Bundle, l.Root)
	if err != nil {
		return transfer.Stats{}, err
	}
	if l.trusted != nil {
		l.trusted()
	}
	bdst, err := s.local(l.BundleRepo)
	if err != nil {
		return transfer.Stats{}, err
	}
	// Only now, the index having passed the policy, may its blob hints
	// start fetches.
	hints := s.hints(ctx, l.Bundle, plats)
	s.setHinted(hintedBytes(hints))
	// The bundle repository also holds every manifest and blob its index
	// reaches, as an upstream bundles repository does (DESIGN.md, "Bundle
	// format"), so another edge can take this one as its upstream (a
	// relay). These links go in the same copy as the images: a blob
	// crosses the link once and is linked into the other repository (no
	// bytes move on site), and each manifest is read once for both.
	src := &onceSource{Source: l.Src, m: map[v1.Hash]*onceManifest{}}
	jobs := make([]transfer.Job, 0, 2*len(l.Bundle.Images)+1)
	links := make([]transfer.Job, 0, len(l.Bundle.Images))
	for i, im := range l.Bundle.Images {
		dst, err := s.local(im.Ref.EdgeRepository())
		if err != nil {
			return transfer.Stats{}, err
		}
		j := transfer.Job{Src: src, Dst: dst, Root: im.Descriptor, Platforms: plats, Recheck: l.Recheck[im.Ref.String()]}
		if hints != nil {
			j.Hints = hints[i]
		}
		jobs = append(jobs, j)
		links = append(links, transfer.Job{Src: localFirst{local: dst, Source: src}, Dst: bdst, Root: im.Descriptor, Platforms: plats})
	}
	jobs = append(jobs, links...)
	if sig.Digest.Hex != "" {
		// The index's signature lands in the bundle repository under
		// cosign's tag before the index, so `cosign verify` against the
		// edge finds it and a visible index is a signed one.
		jobs = append(jobs, transfer.Job{Src: l.Src, Dst: bdst, Root: sig, Tags: []string{trust.SignatureTag(l.Root.Digest)}})
	}
	st, err := eng.Copy(ctx, jobs...)
	if err != nil {
		return st, fmt.Errorf("copy images (and link them into %s): %w", l.BundleRepo, err)
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if err := s.claimDeployed(ctx, l.claims); err != nil {
		return st, err
	}
	// Tags, then the bundle index: the commit point.
	if err := s.claimTags(ctx, l.Bundle, l.claims.keys); err != nil {
		return st, err
	}
	if _, err := s.engine.Copy(ctx, transfer.Job{Src: transfer.ManifestSource(l.Raw, l.Root), Dst: bdst, Root: l.Root, Tags: []string{l.Bundle.Revision}, RootOnly: true}); err != nil {
		return st, fmt.Errorf("write bundle index: %w", err)
	}
	l.claims.markComplete(l.Bundle)
	return st, nil
}

// onceSource reads each manifest from Source once for all the jobs of a
// copy that walk it at the same time (an image and its link into the
// bundle repository): one request over the link, not two. Bytes that do
// not match their descriptor, and failures, are not kept.
type onceSource struct {
	transfer.Source
	mu sync.Mutex
	m  map[v1.Hash]*onceManifest
}

type onceManifest struct {
	once sync.Once
	raw  []byte
	err  error
}

func (s *onceSource) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	s.mu.Lock()
	e := s.m[d.Digest]
	if e == nil {
		e = &onceManifest{}
		s.m[d.Digest] = e
	}
	s.mu.Unlock()
	e.once.Do(func() {
		e.raw, e.err = s.Source.FetchManifest(ctx, d)
		if e.err == nil {
			e.err = oci.VerifyBytes(e.raw, d)
		}
	})
	if e.err != nil {
		s.mu.Lock()
		if s.m[d.Digest] == e {
			delete(s.m, d.Digest) // the engine's retry asks again
		}
		s.mu.Unlock()
		return nil, e.err
	}
	return e.raw, nil
}

// localFirst reads a manifest from the edge registry's repository local
// when it is there (an image already on site, linked into the bundle
// repository: no request over the link), else from Source.
type localFirst struct {
	transfer.Source
	local *registryclient.Remote
}

func (l localFirst) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if raw, err := l.local.FetchManifest(ctx, d); err == nil && oci.VerifyBytes(raw, d) == nil {
		return raw, nil
	}
	return l.Source.FetchManifest(ctx, d)
}

// BlobHolder is implemented by an edge registry that says whether it
// holds a blob under any repository (*registry.Registry does). Without it,
// sync does not use a bundle's blob hints: a hinted blob the registry
// holds elsewhere must be linked, not fetched again.
type BlobHolder interface {
	HoldsBlob(ctx context.Context, dgst string) (bool, error)
}

// hints returns, for each entry of b, the blobs its bundle.AnnotationBlobs
// hints that plats selects and the edge registry holds nowhere: the
// engine fetches them as soon as the copy starts (transfer.Job.Hints).
// nil means none: the index has no hints, or hints that fail their
// checks or bounds (logged; the walk finds every blob as without hints),
// or the registry cannot say what it holds.
func (s *Syncer) hints(ctx context.Context, b *bundle.Bundle, plats oci.Platforms) [][]v1.Descriptor {
	holder, ok := s.o.Local.(BlobHolder)
	if !ok {
		return nil
	}
	hs, err := bundle.BlobHints(b)
	if errors.Is(err, bundle.ErrNoHints) {
		return nil
	}
	if err != nil {
		s.log.Warn("bundle index: blob hints not used", "revision", b.Revision, "err", err)
		return nil
	}
	out := make([][]v1.Descriptor, len(hs))
	for i, entry := range hs {
		for _, h := range entry {
			if !h.Selected(plats) {
				continue
			}
			held, err := holder.HoldsBlob(ctx, h.Digest.String())
			if err != nil {
				s.log.Warn("bundle index: blob hints not used", "revision", b.Revision, "err", err)
				return nil
			}
			if !held {
				out[i] = append(out[i], h.Descriptor())
			}
		}
	}
	return out
}

// hintedBytes sums the sizes of the distinct blobs of hs.
func hintedBytes(hs [][]v1.Descriptor) int64 {
	seen := map[v1.Hash]bool{}
	var n int64
	for _, entry := range hs {
		for _, d := range entry {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				n += d.Size
			}
		}
	}
	return n
}

// LandImport lands a bundle brought by other means than the link (an
// export file) for repository repoURL by sync's claim rules, so an older
// file never moves tags backwards: the deployed revision claims its tags
// first, then every complete wanted revision newer than the landed one
// (nearer a tracked tip when the landed revision is wanted; built later
// by its bundle's creation time when it is not, as when its git objects
// are loaded after its images). The caller must hold the data dir's lock.
func (s *Syncer) LandImport(ctx context.Context, repoURL string, l Landing) (transfer.Stats, error) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	id, err := imageref.RepoID(repoURL)
	if err != nil {
		return transfer.Stats{}, err
	}
	cl := &claims{id: id, bundleRepo: l.BundleRepo, keys: map[string]bool{}}
	l.claims = cl
	if r, ok := s.o.Config.Repository(id); ok && r.Bundles != "" {
		wanted, err := s.wanted(ctx, r)
		if err != nil && !errors.Is(err, gitmirror.ErrNotReady) {
			return transfer.Stats{}, fmt.Errorf("wanted revisions of %s: %w", id, err)
		}
		cl.tips = tipsOf(wanted)
		isWanted := false
		for _, w := range wanted {
			isWanted = isWanted || w.sha == l.Bundle.Revision
		}
		s.stateMu.Lock()
		err = s.claimDeployed(ctx, cl)
		for _, w := range wanted {
			if err != nil || w.sha == l.Bundle.Revision {
				break
			}
			rep, cerr := bundle.CheckComplete(ctx, s.presence, layout(l.BundleRepo, false), w.sha, s.platforms)
			if cerr != nil || !rep.Complete() || (!isWanted && !rep.Bundle.Created.After(l.Bundle.Created)) {
				continue
			}
			// As a pass: a bundle the trust policy refuses (one landed
			// before signatures were required) claims nothing, neither
			// tags nor its remote bases' moving refs.
			if terr := s.trustLocal(ctx, l.BundleRepo, rep.Bundle, rep.Index); terr != nil {
				if !IsUntrusted(terr) {
					err = terr
					break
				}
				s.log.Warn("complete revision refused by the trust policy: claims nothing", "repo", id, "revision", w.sha, "reason", terr)
				continue
			}
			err = s.claimTags(ctx, rep.Bundle, cl.keys)
			cl.markComplete(rep.Bundle)
		}
		s.stateMu.Unlock()
		if err != nil {
			return transfer.Stats{}, err
		}
		st, err := s.Land(ctx, l)
		if err == nil {
			s.stateMu.Lock()
			s.claimRepoGitRefs(ctx, cl, wanted, l.Bundle)
			s.stateMu.Unlock()
		}
		return st, err
	}
	return s.Land(ctx, l)
}
