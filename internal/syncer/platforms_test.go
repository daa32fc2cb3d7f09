package syncer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestSyncPlatformVariants is issue 11 §5's platforms case on a real site:
// an index whose arm64 entry has no variant (as buildx writes it) and an
// edge asking for linux/arm64/v8 (as Docker Hub labels it) are one
// platform, so sync brings arm64 over; an edge asking for a platform the
// index lacks gets an error naming what it has, and the revision is never
// complete.
func TestSyncPlatformVariants(t *testing.T) {
	img := testimage.Index(t, []string{"linux/amd64", "linux/arm64"}, 2, 64<<10)
	t.Run("arm64/v8 selects arm64", func(t *testing.T) {
		s := newSite(t, func(c *config.Config) { c.Platforms = []string{"linux/arm64/v8"} })
		rev := s.commit(map[string]string{"app.yaml": "v1"})
		pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/app:v1": img})
		if res := s.pass(); res.Complete != 1 || !res.Done() {
			t.Fatalf("pass: %+v", res)
		}
		rep := s.check(rev)
		if !rep.Complete() {
			t.Fatalf("not complete: %v", rep.Missing)
		}
		// arm64's two layers and config, nothing of amd64.
		if rep.Blobs != 3 || rep.Bytes < 2*64<<10 {
			t.Fatalf("complete with %d blobs (%d bytes), want arm64's 2 layers and config", rep.Blobs, rep.Bytes)
		}
	})
	t.Run("a platform the index lacks is an error, never complete", func(t *testing.T) {
		s := newSite(t, func(c *config.Config) { c.Platforms = []string{"linux/arm/v7"} })
		rev := s.commit(map[string]string{"app.yaml": "v1"})
		pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/app:v1": img})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := s.sync.Pass(ctx)
		if res.Done() || res.Complete != 0 || res.Failed != 1 {
			t.Fatalf("pass: %+v, %v; want the revision failed", res, err)
		}
		const want = "no manifest for linux/arm/v7 in index sha256:"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "it has linux/amd64, linux/arm64") {
			t.Fatalf("pass error %v, want %q naming linux/amd64, linux/arm64", err, want)
		}
		// The bundle index, written last, never landed.
		if rep := s.check(rev); rep.Complete() || !strings.Contains(fmt.Sprint(rep.Missing), "bundle index") {
			t.Fatalf("check: complete=%v missing=%v, want the bundle index missing", rep.Complete(), rep.Missing)
		}
		got := s.sync.Status().Repos[0].Revisions[0]
		if got.Revision != rev || got.State == syncer.StateComplete || !strings.Contains(got.Error, want) {
			t.Fatalf("status %+v, want not complete with error %q", got, want)
		}
	})
}
