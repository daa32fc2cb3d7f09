package syncer

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// LocalBundle is a bundle index present in the edge registry.
type LocalBundle struct {
	RepoURL  string  // the repository's upstream URL, as in the edge config
	Revision string  // full commit SHA: the index's tag
	Digest   v1.Hash // the index's digest
}

// LocalBundles lists the bundle indexes present in the edge registry for
// every configured repository that has bundles: one tag list per
// repository and one manifest HEAD per revision tag. Sync writes an index
// last and retention deletes it first, so these are the revisions whose
// bundles were complete when written and are still kept; CompleteBundle
// tells whether one still is.
func (s *Syncer) LocalBundles(ctx context.Context) ([]LocalBundle, error) {
	var out []LocalBundle
	for _, r := range s.o.Config.Repositories {
		if r.Bundles == "" {
			continue
		}
		br, err := imageref.BundleRepository(r.URL)
		if err != nil {
			return nil, err
		}
		tags, err := s.listTags(ctx, br)
		if err != nil {
			return nil, err
		}
		repo, err := s.local(br)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			if !bundle.IsRevision(t) {
				continue
			}
			d, err := repo.ResolveTag(ctx, t)
			if errors.Is(err, transfer.ErrNotFound) {
				continue // deleted since the list
			}
			if err != nil {
				return nil, fmt.Errorf("bundle %s:%s: %w", br, t, err)
			}
			out = append(out, LocalBundle{RepoURL: r.URL, Revision: t, Digest: d.Digest})
		}
	}
	return out, nil
}

// CompleteBundle returns revision sha's bundle when it is complete in the
// edge registry as sync judges it (image tags aside, as BundleComplete),
// and nil when it is not.
func (s *Syncer) CompleteBundle(ctx context.Context, repoURL, sha string) (*bundle.Bundle, error) {
	br, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return nil, err
	}
	rep, err := bundle.CheckComplete(ctx, s.presence, layout(br, false), sha, s.platforms)
	if err != nil {
		return nil, err
	}
	if !rep.Complete() {
		return nil, nil
	}
	return rep.Bundle, nil
}
