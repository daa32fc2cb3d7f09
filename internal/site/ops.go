package site

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/syncer"
)

// PassResult and Status are sync's, re-exported for callers of the site
// (the CLI prints them) so they need not import the syncer.
type (
	PassResult = syncer.PassResult
	Status     = syncer.Status
)

// SyncOnce fetches every configured repository into the mirror (offline
// is normal: the local copy is used, with a warning), runs one sync pass,
// then fetches the submodules and remote bases the revisions need. It
// returns the pass result and sync's status after it.
func (s *Site) SyncOnce(ctx context.Context) (PassResult, Status, error) {
	for _, r := range s.Config.Repositories {
		if err := s.Mirror.Poll(ctx, r.URL); err != nil {
			if ctx.Err() != nil {
				return PassResult{}, Status{}, ctx.Err()
			}
			s.log.Warn("git fetch failed; using the mirror's local copy", "repo", r.URL, "err", err)
		}
	}
	s.passLFS(ctx)
	res, err := s.Sync.Pass(ctx)
	// The submodules and remote bases of the revisions (the pass has
	// handed the bundles' ones to the mirror): fetched now, as the
	// daemon's loop would.
	if derr := s.Mirror.SyncGitDeps(ctx); derr != nil {
		if ctx.Err() != nil {
			return res, s.Sync.Status(), ctx.Err()
		}
		s.log.Warn("git dependencies incomplete; verify will name them", "err", derr)
	}
	s.passLFSDeps(ctx)
	return res, s.Sync.Status(), err
}

// ErrUnknownRepo is returned by Import for a repository the edge config
// does not list, or when the config lists several and none was named.
var ErrUnknownRepo = errors.New("repository not in the edge config")

// Import loads an export file into the site as sync would have brought it:
// the images, their tags by sync's claim rules and the bundle index
// through the syncer, then the git objects through the mirror (branches
// only forward unless o.Force), then the submodule and remote base commits
// into the mirror's dependency repositories and the LFS objects into the
// LFS store. o.RepoURL defaults to the config's only
// repository. o.Registry, o.GitDir, o.Mirror and o.Sync are set here.
func (s *Site) Import(ctx context.Context, o sneakernet.ImportOptions) (*sneakernet.ImportResult, error) {
	if o.RepoURL == "" {
		if len(s.Config.Repositories) != 1 {
			return nil, fmt.Errorf("%w: the config has several repositories; say which one the file is for", ErrUnknownRepo)
		}
		o.RepoURL = s.Config.Repositories[0].URL
	}
	id, err := imageref.RepoID(o.RepoURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnknownRepo, o.RepoURL, err)
	}
	if _, ok := s.Config.Repository(id); !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRepo, o.RepoURL)
	}
	// A site that only ever gets updates on a drive has no clone yet.
	if _, err := s.Mirror.EnsureRepo(ctx, o.RepoURL); err != nil {
		return nil, err
	}
	o.GitDir = ""
	o.Mirror, o.Sync = s.Mirror, s.Sync
	o.GitDeps = s.Mirror
	if s.LFS != nil {
		o.LFS = s.LFS
	}
	o.Registry = "edge.ballast.invalid"
	o.RemoteOptions = []registryclient.Option{registryclient.WithInsecure(true), registryclient.WithTransport(s.Registry.Transport()), registryclient.WithKeychain(authn.NewMultiKeychain()),
		// The edge registry links blobs it already holds: an import moves
		// only what the site lacks.
		registryclient.WithMountAnywhere(true)}
	return sneakernet.Import(ctx, o)
}
