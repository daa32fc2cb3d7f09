package transfer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// BenchmarkCopyVsCrane copies the same multi-arch images between two real
// registries with the engine and with go-containerregistry's crane.Copy (the
// library behind `crane copy`), alternating, each into fresh repositories.
// speed-vs-crane > 1 means the engine is faster; rerun-bytes is what a
// second engine copy of the same images reads (want 0).
func BenchmarkCopyVsCrane(b *testing.B) {
	up := regserver.Start(b, regserver.Options{})
	down := regserver.Start(b, regserver.Options{})
	const images, layerSize = 4, 8 << 20 // 4 images x 2 platforms x 2 layers x 8 MiB = 128 MiB
	var roots []v1.Descriptor
	var size int64
	for i := 0; i < images; i++ {
		idx := testimage.Index(b, []string{"linux/amd64", "linux/arm64"}, 2, layerSize)
		roots = append(roots, pushIndex(b, up.Repo(fmt.Sprintf("src/img%d", i)), "v1", idx))
		size += bundleSize(b, idx)
	}
	ctx := context.Background()
	var tEngine, tStaged, tCrane time.Duration
	var rerun int64
	b.SetBytes(size)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		run := func(staged bool) (time.Duration, *transfer.Engine, []transfer.Job) {
			opts := []transfer.Option{transfer.WithConcurrency(4)}
			if staged {
				opts = append(opts, transfer.WithStagingDir(b.TempDir()))
			}
			e := newEngine(b, opts...)
			var jobs []transfer.Job
			for i, r := range roots {
				jobs = append(jobs, transfer.Job{
					Src:  newRemote(b, up.Repo(fmt.Sprintf("src/img%d", i))),
					Dst:  newRemote(b, down.Repo(fmt.Sprintf("e%d-%v/img%d", n, staged, i))),
					Root: r, Tags: []string{"v1"},
				})
			}
			start := time.Now()
			if _, err := e.Copy(ctx, jobs...); err != nil {
				b.Fatal(err)
			}
			return time.Since(start), e, jobs
		}
		d, e, jobs := run(false)
		tEngine += d
		d, _, _ = run(true)
		tStaged += d
		start := time.Now()
		for i := range roots {
			src := up.Repo(fmt.Sprintf("src/img%d:v1", i))
			dst := down.Repo(fmt.Sprintf("c%d/img%d:v1", n, i))
			if err := crane.Copy(src, dst, crane.Insecure, crane.WithJobs(4)); err != nil {
				b.Fatal(err)
			}
		}
		tCrane += time.Since(start)
		st, err := e.Copy(ctx, jobs...)
		if err != nil {
			b.Fatal(err)
		}
		rerun += st.BytesRead + st.BytesWritten
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mbps(tEngine), "engine-MiB/s")
	b.ReportMetric(mbps(tStaged), "engine-staged-MiB/s")
	b.ReportMetric(mbps(tCrane), "crane-MiB/s")
	b.ReportMetric(tCrane.Seconds()/tEngine.Seconds(), "speed-vs-crane")
	b.ReportMetric(tCrane.Seconds()/tStaged.Seconds(), "staged-speed-vs-crane")
	b.ReportMetric(float64(rerun)/float64(b.N), "rerun-bytes")
}
