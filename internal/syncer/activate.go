package syncer

import (
	"context"
	"errors"
	"fmt"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
)

// ErrIncomplete is returned by Activate when the revision's content is not
// all in the edge registry; the report says what is missing.
var ErrIncomplete = errors.New("bundle is not complete")

// Activate prepares revision sha of repoURL for deployment: when every
// manifest and blob of its bundle is local and the bundle passes the
// trust policy (else an UntrustedError, IsUntrusted), it points each image tag at this
// revision's digest (a rollback moves tags back), points the moving refs
// its remote bases name (`?ref=main`) at its recorded commits in the git
// mirror, and records the revision as
// deployed, so retention keeps it and later passes leave its tags alone.
// It records the revision even when no tag had to move (the usual first
// deployment). It takes only the short state lock: a pass downloading
// blobs does not delay it. The returned report is the check after the tags
// moved.
func (s *Syncer) Activate(ctx context.Context, repoURL, sha string, store *DeployedStore) (*bundle.Report, error) {
	// The short lock only: an activation never waits for a download.
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	id, err := imageref.RepoID(repoURL)
	if err != nil {
		return nil, err
	}
	br, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return nil, err
	}
	rep, err := bundle.CheckComplete(ctx, s.presence, layout(br, false), sha, s.platforms)
	if err != nil {
		return nil, err
	}
	if !rep.Complete() {
		return rep, ErrIncomplete
	}
	// A bundle the trust policy refuses (one landed before signatures
	// were required) moves no tag and no ref, on activation as on a pass.
	if err := s.trustLocal(ctx, br, rep.Bundle, rep.Index); err != nil {
		return nil, fmt.Errorf("activate %s: %w", short(sha), err)
	}
	for _, im := range rep.Bundle.Images {
		if im.Ref.Tag == "" {
			continue
		}
		dst, err := s.local(im.Ref.EdgeRepository())
		if err != nil {
			return nil, err
		}
		cur, err := dst.ResolveTag(ctx, im.Ref.Tag)
		if err == nil && cur.Digest == im.Descriptor.Digest {
			continue
		}
		if err := s.writeTag(ctx, tagWrite{dst: dst, d: im.Descriptor, tag: im.Ref.Tag}); err != nil {
			return nil, fmt.Errorf("activate %s: %w", short(sha), err)
		}
		s.log.Info("tag re-pointed for deployment", "image", im.Ref.String(), "revision", sha)
	}
	// The remote bases' moving refs too, before the record: a kill in
	// between leaves them pointed and the activation unrecorded, which the
	// hook's retry redoes.
	if err := s.activateGitRefs(ctx, rep.Bundle); err != nil {
		return nil, fmt.Errorf("activate %s: %w", short(sha), err)
	}
	if store != nil {
		if err := store.RecordActivation(id, sha, s.tips(ctx, id)); err != nil {
			return nil, fmt.Errorf("record deployed revision: %w", err)
		}
	}
	return bundle.CheckComplete(ctx, s.presence, layout(br, true), sha, s.platforms)
}
