package verify_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/verify"
)

// BenchmarkVerify100Images checks a 100-image bundle against a running
// daemon. Baseline, in the same run: the same completeness check walked one
// request at a time. Reported: ms per verify and the speed-up over the
// baseline.
func BenchmarkVerify100Images(b *testing.B) {
	s := startEdge(b)
	imgs := map[string]v1.Image{}
	for i := 0; i < 100; i++ {
		imgs[fmt.Sprintf("ghcr.io/org/svc%03d:v1", i)] = testimage.Image(b, "linux/amd64", 2, 1024)
	}
	rev := s.release(imgs)
	s.waitSynced(rev)
	if r := s.verify(rev); !r.Ready {
		b.Fatalf("not ready: %+v", r)
	}
	ctx := context.Background()
	br, _ := imageref.BundleRepository(s.url)
	layout := bundle.Placement{BundleRepo: br, ImageRepo: func(r imageref.Ref) string { return r.EdgeRepository() }, CheckTags: true}
	const rounds = 5
	var base time.Duration
	for i := 0; i < rounds; i++ {
		p := registryclient.NewPresence(s.registry, registryclient.WithInsecure(true), registryclient.WithKeychain(authn.NewMultiKeychain()))
		start := time.Now()
		rep, err := bundle.CheckComplete(ctx, p, layout, rev, nil)
		if err != nil || !rep.Complete() {
			b.Fatalf("baseline: %v %v", err, rep)
		}
		base += time.Since(start)
	}
	base /= rounds
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r, err := verify.Run(ctx, verify.Options{RepoURL: s.url, Revision: rev, MirrorURL: s.mirror, Registry: s.registry})
		if err != nil || !r.Ready {
			b.Fatalf("%v %+v", err, r)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/verify")
	b.ReportMetric(float64(base.Microseconds())/1000, "ms/sequential-baseline")
	b.ReportMetric(float64(base)/float64(per), "x-faster-than-baseline")
}
