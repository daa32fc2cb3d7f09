package syncer

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// manifestKey names one manifest in one edge repository.
type manifestKey struct {
	repo   string
	digest v1.Hash
}

// retain deletes the local bundles of repository id that are neither
// wanted, deployed nor advertised by a gated mirror, then the image
// manifests that only they reached, then collects the registry's garbage.
// It does nothing while a wanted revision that has a bundle is incomplete:
// old bundles stay until the new ones are in, so an offline rollback always
// has somewhere to go.
func (s *Syncer) retain(ctx context.Context, url, id, bundleRepo string, wanted []wantedRev) (int, error) {
	keep := map[string]bool{}
	for _, w := range wanted {
		keep[w.sha] = true
	}
	adv, err := s.o.Mirror.Advertised(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("advertised revisions: %w", err)
	}
	for _, a := range adv {
		keep[a.Commit] = true
	}
	st := s.status.snapshot()
	for _, r := range st.Repos {
		if r.Repo != id {
			continue
		}
		for _, rv := range r.Revisions {
			if rv.State != StateComplete && rv.State != StateNoBundle {
				return 0, nil
			}
		}
	}
	tags, err := s.listTags(ctx, bundleRepo)
	if err != nil {
		return 0, err
	}
	var drop []string
	for _, t := range tags {
		if !bundle.IsRevision(t) {
			// A bundle index's signature (cosign's sha256-<hex>.sig) goes
			// with its bundle, below.
			continue
		}
		if keep[t] || (s.o.Deployed != nil && s.o.Deployed.IsDeployed(id, t)) {
			keep[t] = true
			continue
		}
		drop = append(drop, t)
	}
	if len(drop) == 0 {
		return 0, nil
	}
	bundles, err := s.local(bundleRepo)
	if err != nil {
		return 0, err
	}
	// What the kept bundles reach stays, whatever else goes.
	kept := map[manifestKey]bool{}
	for t := range keep {
		b, _, err := s.localBundle(ctx, bundles, t)
		if errors.Is(err, transfer.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if err := s.reach(ctx, bundleRepo, b, kept); err != nil {
			return 0, err
		}
	}
	deleted := 0
	var errs []error
	for _, t := range drop {
		b, d, err := s.localBundle(ctx, bundles, t)
		if err != nil && !errors.Is(err, transfer.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		reached := map[manifestKey]bool{}
		if b != nil {
			if err := s.reach(ctx, bundleRepo, b, reached); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		// The bundle index first: from here on the revision is not
		// complete, whatever is left of its images.
		if err := s.deleteManifest(ctx, bundleRepo, d.Digest); err != nil {
			errs = append(errs, err)
			continue
		}
		if sig, err := bundles.ResolveTag(ctx, trust.SignatureTag(d.Digest)); err == nil {
			if err := s.deleteManifest(ctx, bundleRepo, sig.Digest); err != nil {
				errs = append(errs, err)
			}
		} else if !errors.Is(err, transfer.ErrNotFound) {
			errs = append(errs, err)
		}
		for k := range reached {
			if kept[k] {
				continue
			}
			if err := s.deleteManifest(ctx, k.repo, k.digest); err != nil {
				errs = append(errs, err)
			}
		}
		deleted++
		s.metrics.deleted.Inc()
		s.log.Info("retention deleted bundle", "repo", id, "revision", t)
	}
	if deleted > 0 && s.o.Collector != nil {
		if err := s.o.Collector.Collect(ctx); err != nil {
			errs = append(errs, fmt.Errorf("garbage collection: %w", err))
		}
	}
	return deleted, errors.Join(errs...)
}

// localBundle reads and parses the local bundle index tagged tag.
func (s *Syncer) localBundle(ctx context.Context, r *registryclient.Remote, tag string) (*bundle.Bundle, v1.Descriptor, error) {
	d, err := r.ResolveTag(ctx, tag)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	raw, err := r.FetchManifest(ctx, d)
	if err != nil {
		return nil, d, err
	}
	if err := oci.VerifyBytes(raw, d); err != nil {
		return nil, d, nil // damaged: delete it, reach nothing
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		return nil, d, nil
	}
	return b, d, nil
}

// reach adds every manifest bundle b reaches in the edge registry to set:
// under each entry's own repository, and the same manifests linked into the
// bundle repository bundleRepo by Land (so an edge can be another's
// upstream), which would otherwise keep every blob alive through garbage
// collection.
func (s *Syncer) reach(ctx context.Context, bundleRepo string, b *bundle.Bundle, set map[manifestKey]bool) error {
	for _, im := range b.Images {
		repo := im.Ref.EdgeRepository()
		r, err := s.local(repo)
		if err != nil {
			return err
		}
		var walk func(d v1.Descriptor, depth int) error
		walk = func(d v1.Descriptor, depth int) error {
			k := manifestKey{repo, d.Digest}
			if set[k] || depth > 4 {
				return nil
			}
			set[k] = true
			set[manifestKey{bundleRepo, d.Digest}] = true
			if !oci.IsIndex(d.MediaType) {
				return nil
			}
			raw, err := r.FetchManifest(ctx, d)
			if errors.Is(err, transfer.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			// Every child, selected platform or not: an unselected child
			// that is present was put there by someone and goes with it.
			ms, _, err := oci.Children(raw, d.MediaType, nil)
			if err != nil {
				return nil
			}
			for _, c := range ms {
				if err := walk(c, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		if err := walk(im.Descriptor, 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syncer) listTags(ctx context.Context, repo string) ([]string, error) {
	r, err := name.NewRepository(localHost+"/"+repo, name.Insecure)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(r, remote.WithContext(ctx), remote.WithTransport(s.o.Local.Transport()), remote.WithAuth(authn.Anonymous))
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	return tags, nil
}

func (s *Syncer) deleteManifest(ctx context.Context, repo string, d v1.Hash) error {
	ref, err := name.NewDigest(localHost+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		return err
	}
	err = remote.Delete(ref, remote.WithContext(ctx), remote.WithTransport(s.o.Local.Transport()), remote.WithAuth(authn.Anonymous))
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == 404 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s@%s: %w", repo, d, err)
	}
	return nil
}
