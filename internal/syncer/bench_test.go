package syncer_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// BenchmarkSyncVsCrane syncs a 256 MiB bundle (4 images × 4 layers × 16 MiB)
// from a real upstream registry into a fresh edge data dir, and, in the
// same run, copies the same images with crane.Copy (the library behind
// `crane copy`) into a fresh edge registry over loopback. speed-vs-crane > 1
// means sync is faster.
func BenchmarkSyncVsCrane(b *testing.B) {
	const images, layers, layerSize = 4, 4, 16 << 20
	var tSync, tCrane time.Duration
	var size int64
	for n := 0; n < b.N; n++ {
		s := newSite(b, nil)
		rev := s.commit(map[string]string{"n": fmt.Sprint(n)})
		arts := map[string]artifact{}
		imgs := map[string]v1.Image{}
		for i := 0; i < images; i++ {
			img := testimage.Image(b, "linux/amd64", layers, layerSize)
			ref := fmt.Sprintf("ghcr.io/org/big%d:v1", i)
			arts[ref], imgs[ref] = img, img
		}
		pushBundle(b, s.up, s.bundles, rev, arts)
		size = int64(images * layers * layerSize)

		start := time.Now()
		res, err := s.sync.Pass(context.Background())
		if err != nil || res.Complete != 1 {
			b.Fatalf("sync: %+v %v", res, err)
		}
		tSync += time.Since(start)

		dst := edgeregistry.Start(b, edgeregistry.Options{})
		auth := crane.WithAuth(&basic{dst.Credentials().Username, dst.Credentials().Password})
		start = time.Now()
		for ref, img := range imgs {
			d, _ := img.Digest()
			src := s.up.Repo(s.bundles) + "@" + d.String()
			if err := crane.Copy(src, dst.Host+"/"+ref, crane.Insecure, auth, crane.WithTransport(http.DefaultTransport.(*http.Transport).Clone())); err != nil {
				b.Fatal(err)
			}
		}
		tCrane += time.Since(start)
	}
	mb := float64(size) / (1 << 20)
	b.ReportMetric(mb*float64(b.N)/tSync.Seconds(), "sync-MiB/s")
	b.ReportMetric(mb*float64(b.N)/tCrane.Seconds(), "crane-MiB/s")
	b.ReportMetric(tCrane.Seconds()/tSync.Seconds(), "speed-vs-crane")
}

type basic struct{ user, pass string }

func (a *basic) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: a.user, Password: a.pass}, nil
}
