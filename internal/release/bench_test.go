package release_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// BenchmarkBundleVsCrane bundles 4 multi-arch images (128 MiB) from one
// registry into a bundles repository on another, and copies the same
// images with crane.Copy, alternating, into fresh repositories.
// speed-vs-crane > 1 means bundle is faster; rerun-bytes is what bundling
// the same revision again moves (want 0).
func BenchmarkBundleVsCrane(b *testing.B) {
	up := regserver.Start(b, regserver.Options{})
	down := regserver.Start(b, regserver.Options{})
	var extra []string
	for i := 0; i < 4; i++ {
		ref := up.Repo(fmt.Sprintf("src/img%d:v1", i))
		r, _ := name.ParseReference(ref, name.Insecure)
		if err := remote.WriteIndex(r, testimage.Index(b, []string{"linux/amd64", "linux/arm64"}, 2, 8<<20)); err != nil {
			b.Fatal(err)
		}
		extra = append(extra, ref)
	}
	repo := b.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-m", "x"}} {
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = os.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git: %v %s", err, out)
		}
	}
	ctx := context.Background()
	anon := registryclient.WithKeychain(authn.NewMultiKeychain())
	var tBundle, tCrane time.Duration
	var rerun, size int64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		o := release.Options{RepoDir: repo, Revision: "HEAD", To: down.Repo(fmt.Sprintf("b%d/bundles", n)),
			Config: &release.Config{ExtraImages: extra}, RemoteOptions: []registryclient.Option{anon},
			Concurrency: 4}
		start := time.Now()
		res, err := release.Run(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		tBundle += time.Since(start)
		size = res.BytesNew
		start = time.Now()
		for i, src := range extra {
			if err := crane.Copy(src, down.Repo(fmt.Sprintf("c%d/img%d:v1", n, i)), crane.Insecure, crane.WithJobs(4)); err != nil {
				b.Fatal(err)
			}
		}
		tCrane += time.Since(start)
		res, err = release.Run(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		rerun += res.Stats.BytesRead + res.Stats.BytesWritten
	}
	b.StopTimer()
	b.ReportMetric(float64(size)/(1<<20), "bundle-MiB")
	b.ReportMetric(tCrane.Seconds()/tBundle.Seconds(), "speed-vs-crane")
	b.ReportMetric(float64(rerun)/float64(b.N), "rerun-bytes")
}
