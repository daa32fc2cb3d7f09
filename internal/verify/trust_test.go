package verify_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/testkeys"
)

// TestVerifyUntrusted runs the real daemon with signatures required: an
// unsigned revision is NOT READY with the trust policy's reason; once its
// bundle is signed upstream the next pass lands it and the gate opens.
func TestVerifyUntrusted(t *testing.T) {
	signer := testkeys.Signer(t)
	pub := testkeys.WritePublicKey(t, signer, filepath.Join(t.TempDir(), "cosign.pub"))
	s := startEdge(t, func(c *config.Config) {
		c.Trust = &config.Trust{PublicKeys: []string{pub}}
		if err := c.Trust.LoadKeys(); err != nil {
			t.Fatal(err)
		}
	})
	sha := s.release(map[string]v1.Image{"ghcr.io/org/app:v1": testimage.Image(t, "linux/amd64", 1, 1<<10)})
	s.waitState(sha, syncer.StateUntrusted)
	r := s.verify(sha)
	if r.Ready || !strings.Contains(r.Reason, "is untrusted") || !strings.Contains(r.Reason, "is not signed") {
		t.Fatalf("unsigned revision: ready %v, reason %q; want NOT READY, untrusted, not signed", r.Ready, r.Reason)
	}

	// Sign the bundle upstream, as `ballast bundle --sign-key` does.
	d, err := remote.Head(mustTag(t, s.up.Repo("fleet/apps-bundles")+":"+sha))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(s.up.Repo("fleet/apps-bundles"), *d)
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository(s.up.Repo("fleet/apps-bundles"), name.Insecure)
	for _, blob := range sig.Blobs {
		if err := remote.WriteLayer(repo, static.NewLayer(blob, types.MediaType("application/octet-stream"))); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Put(mustTag(t, s.up.Repo("fleet/apps-bundles")+":"+sig.Tag), rawManifest{sig.Manifest, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	s.d.Sync.Kick()
	s.waitSynced(sha)
	if r := s.verify(sha); !r.Ready {
		t.Fatalf("signed revision: NOT READY: %s", r.Reason)
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// waitState waits until the daemon's sync reports sha in state.
func (s *edgeSite) waitState(sha, state string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		for _, r := range s.d.Sync.Status().Repos {
			for _, rv := range r.Revisions {
				if rv.Revision == sha && rv.State == state {
					return
				}
			}
		}
		s.d.Sync.Kick()
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("revision %s not %s in time: %+v", sha, state, s.d.Sync.Status())
}
