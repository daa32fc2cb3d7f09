package verify_test

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// The first deployment of a revision finds its tags where sync put them:
// verify --activate must still record it as deployed, or retention may
// delete the running revision once a newer one arrives (issue 11 §3).
func TestActivateRecordsFirstDeployment(t *testing.T) {
	s := startEdge(t)
	rev := s.release(map[string]v1.Image{"ghcr.io/org/app:stable": testimage.Image(t, "linux/amd64", 1, 32<<10)})
	s.waitSynced(rev)
	if r := s.verify(rev); !r.Ready {
		t.Fatalf("synced revision not ready: %+v", r)
	}
	r := s.verify(rev, func(o *verify.Options) { o.Activate = true })
	if !r.Ready || !r.Activated {
		t.Fatalf("verify --activate of a ready revision whose tags are in place: %+v", r)
	}
	id, _ := imageref.RepoID(s.url)
	if !s.d.Deployed.IsDeployed(id, rev) || s.d.Deployed.Current(id) != rev {
		t.Fatalf("ready activation not recorded as deployed (current %q)", s.d.Deployed.Current(id))
	}
}
