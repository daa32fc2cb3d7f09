package lfs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/linkproxy"
)

// BenchmarkLFSRevision measures what the mirror spends on the LFS objects
// of a revision against a plain client doing the same work: `git clone
// --bare` + `git lfs fetch origin <rev>` into a fresh directory. Every LFS
// byte crosses a counting proxy in front of lfs-test-server (the link's own
// count). rev1 has 8 objects of 1 MiB; rev2 changes one of them. For rev1
// the mirror and the client fetch the same objects; for rev2 the mirror
// fetches only the changed object, the fresh client all of them again.
// Reported: mirror/client ratios of LFS link bytes and of time (the mirror's
// LFS pass against `git lfs fetch`), per revision.
func BenchmarkLFSRevision(b *testing.B) {
	s := newSite(b)
	px := linkproxy.Start(b, s.lfsUp.Addr())
	s.lfsUp.SetHost(b, px.Addr)
	s.lfsURL = "http://" + px.Addr + "/" + lfsRepo
	rng := rand.New(rand.NewPCG(3, 4))
	blob := func() string {
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(rng.UintN(256))
		}
		return string(buf)
	}
	files := map[string]string{}
	for i := 0; i < 8; i++ {
		files[fmt.Sprintf("data/obj%d.bin", i)] = blob()
	}
	rev1 := s.commitLFS(nil, files)
	rev2 := s.commitLFS(nil, map[string]string{"data/obj0.bin": blob()})

	client := func(rev string) (int64, time.Duration) {
		dir := filepath.Join(b.TempDir(), "c.git")
		gitserver.Git(b, "", "clone", "--quiet", "--bare", s.url, dir)
		before := px.Down()
		start := time.Now()
		if out, err := clientGit(b, "", nil, "--git-dir="+dir, "lfs", "fetch", "origin", rev); err != nil {
			b.Fatalf("git lfs fetch: %v\n%s", err, out)
		}
		return px.Down() - before, time.Since(start)
	}
	var mb, cb [2]int64
	var mt, ct [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.repo.ForcePush("main", rev1)
		s.dataDir = b.TempDir()
		s.start(0)
		for j, rev := range []string{rev1, rev2} {
			s.repo.ForcePush("main", rev)
			if err := s.gm.Poll(context.Background(), s.url); err != nil {
				b.Fatal(err)
			}
			before := px.Down()
			start := time.Now()
			if err := s.lm.Pass(context.Background(), s.url); err != nil {
				b.Fatal(err)
			}
			mt[j] += time.Since(start)
			mb[j] += px.Down() - before
			n, d := client(rev)
			cb[j] += n
			ct[j] += d
		}
		s.stop()
	}
	for j, name := range []string{"rev1", "rev2"} {
		b.ReportMetric(float64(mb[j])/float64(cb[j]), "bytes-ratio-"+name)
		b.ReportMetric(mt[j].Seconds()/ct[j].Seconds(), "time-ratio-"+name)
		b.ReportMetric(float64(mb[j])/float64(b.N)/(1<<20), "mirror-MiB-"+name)
		b.ReportMetric(float64(cb[j])/float64(b.N)/(1<<20), "client-MiB-"+name)
	}
}
