package verify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// TestVerifyRevisionKinds covers the class "--revision names something
// other than a commit": an annotated tag object (peeled to its commit, and
// said so), nested tags, trees and blobs (said exactly), short SHAs and
// names (refused as bad input).
func TestVerifyRevisionKinds(t *testing.T) {
	s := startEdge(t)
	rev := s.release(map[string]v1.Image{"ghcr.io/org/app:1": testimage.Image(t, "linux/amd64", 1, 16<<10)})
	s.waitSynced(rev)
	s.repo.Git("tag", "-a", "-m", "release 1", "v1", rev)
	tag := s.repo.Rev("refs/tags/v1")
	s.repo.Git("tag", "-a", "-m", "signed-off release 1", "v1-outer", tag)
	outer := s.repo.Rev("refs/tags/v1-outer")
	tree := s.repo.Rev(rev + "^{tree}")
	blob := s.repo.Rev(rev + ":README")
	s.repo.Git("tag", "-a", "-m", "a tree", "tree-tag", tree)
	treeTag := s.repo.Rev("refs/tags/tree-tag")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.d.Mirror.Poll(ctx, s.url); err != nil {
		t.Fatal(err)
	}
	if tag == rev || outer == tag {
		t.Fatalf("test setup: tag objects not made (%s %s %s)", rev, tag, outer)
	}

	for _, tc := range []struct {
		name, revision string
		ready          bool
		peeled         int
		reason         string
	}{
		{"commit", rev, true, 0, ""},
		{"annotated tag object", tag, true, 1, ""},
		{"nested annotated tags", outer, true, 2, ""},
		{"tree", tree, false, 0, "is a tree in the git mirror, not a commit"},
		{"blob", blob, false, 0, "is a blob in the git mirror, not a commit"},
		{"tag of a tree", treeTag, false, 0, "annotated tag object that points at a tree"},
		{"absent", strings.Repeat("cd", 20), false, 0, "not in the git mirror"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.verify(tc.revision)
			if r.Ready != tc.ready || (tc.reason != "" && !strings.Contains(r.Reason, tc.reason)) {
				t.Fatalf("ready %v, reason %q; want ready %v, reason containing %q", r.Ready, r.Reason, tc.ready, tc.reason)
			}
			if !tc.ready {
				if r.CommitPresent {
					t.Errorf("commitPresent for a %s", tc.name)
				}
				return
			}
			if r.Revision != rev || len(r.PeeledTags) != tc.peeled {
				t.Errorf("revision %s (peeled %v), want %s after peeling %d tags", r.Revision, r.PeeledTags, rev, tc.peeled)
			}
			if tc.peeled > 0 && (r.Requested != tc.revision || r.PeeledTags[0] != tc.revision) {
				t.Errorf("requested %q, peeled %v: the tag asked for is not reported", r.Requested, r.PeeledTags)
			}
			if tc.peeled == 0 && r.Requested != "" {
				t.Errorf("requested %q for a commit", r.Requested)
			}
		})
	}

	for _, tc := range []struct{ revision, want string }{
		{rev[:7], "short SHA"},
		{rev[:12], "short SHA"},
		{strings.ToUpper(rev), "lowercase"},
		{"main", "not a branch or tag name"},
		{rev + "00", "42 hex digits"},
	} {
		t.Run("bad input "+tc.revision, func(t *testing.T) {
			_, err := verify.Run(ctx, verify.Options{RepoURL: s.url, Revision: tc.revision, MirrorURL: s.mirror, Registry: s.registry})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}
