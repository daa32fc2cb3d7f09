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
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
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

// BenchmarkVerifyWithCharts checks a bundle of 100 images and 5 Helm
// charts (Helm's OCI form) against a running daemon. Baseline, in the same
// run: verify of the same 100 images without the charts. Reported: ms per
// verify of each and the ratio.
func BenchmarkVerifyWithCharts(b *testing.B) {
	s := startEdge(b)
	var imgs, withCharts []helmrepo.Entry
	for i := 0; i < 100; i++ {
		imgs = append(imgs, helmrepo.Entry{Ref: fmt.Sprintf("ghcr.io/org/svc%03d:v1", i), Image: testimage.Image(b, "linux/amd64", 2, 1024)})
	}
	withCharts = append(withCharts, imgs...)
	for i := 0; i < 5; i++ {
		c := helmrepo.PackageOCI(b, helmrepo.Chart{Name: fmt.Sprintf("chart%d", i), Version: "1.0.0", Image: "ghcr.io/org/svc000:v1"})
		withCharts = append(withCharts, helmrepo.ChartEntry(b, "https://charts.example.com/stable", c))
	}
	base := s.repo.Commit("main", map[string]string{"rev": "images"})
	helmrepo.PushBundle(b, s.up.Repo("fleet/apps-bundles"), base, imgs...)
	rev := s.repo.Commit("main", map[string]string{"rev": "charts"})
	helmrepo.PushBundle(b, s.up.Repo("fleet/apps-bundles"), rev, withCharts...)
	s.waitSynced(base)
	s.waitSynced(rev)
	ctx := context.Background()
	run := func(sha string) {
		r, err := verify.Run(ctx, verify.Options{RepoURL: s.url, Revision: sha, MirrorURL: s.mirror, Registry: s.registry})
		if err != nil || !r.Ready {
			b.Fatalf("%v %+v", err, r)
		}
	}
	const rounds = 10
	start := time.Now()
	for i := 0; i < rounds; i++ {
		run(base)
	}
	baseline := time.Since(start) / rounds
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		run(rev)
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/verify")
	b.ReportMetric(float64(baseline.Microseconds())/1000, "ms/verify-without-charts")
	b.ReportMetric(float64(per)/float64(baseline), "x-of-without-charts")
}
