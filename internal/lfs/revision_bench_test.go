package lfs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/lfs"
)

// BenchmarkRevisionWithoutLFS measures what the edge's readiness gate
// spends on the LFS check of a revision of a repository that uses no LFS:
// lfs.Mirror.Revision of a commit of 2,000 small plain files (each read
// and found not to be a pointer), first on a fresh store (the scan) and
// then again (the cached answer the gate gets on every later recompute).
// Baseline, same run: one `git ls-tree -r` of the same commit through the
// mirror, the least any look at the revision's files costs. Reported:
// first/baseline and cached/baseline time ratios.
func BenchmarkRevisionWithoutLFS(b *testing.B) {
	s := newSite(b)
	files := map[string]string{}
	for i := 0; i < 2000; i++ {
		files[fmt.Sprintf("deploy/%03d/cm%d.yaml", i/100, i)] = fmt.Sprintf("kind: ConfigMap\nmetadata:\n  name: cm%d\n", i)
	}
	sha := s.repo.Commit("main", files)
	s.start(0)
	ctx := context.Background()
	if err := s.gm.Poll(ctx, s.url); err != nil {
		b.Fatal(err)
	}
	var base, first, cached time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.gm.RunGit(ctx, s.url, false, nil, "ls-tree", "-r", "-z", "--long", sha, "--"); err != nil {
			b.Fatal(err)
		}
		base += time.Since(start)
		lm, err := lfs.New(lfs.Options{DataDir: s.dataDir, Git: s.gm, Repos: []lfs.Repo{{URL: s.url}}})
		if err != nil {
			b.Fatal(err)
		}
		for j, d := range []*time.Duration{&first, &cached} {
			start = time.Now()
			rep, err := lm.Revision(ctx, s.url, sha)
			*d += time.Since(start)
			if err != nil || rep.Objects != 0 || len(rep.Missing) != 0 || len(rep.Malformed) != 0 {
				b.Fatalf("revision report %d: %+v, %v: want no LFS objects", j, rep, err)
			}
		}
	}
	b.ReportMetric(first.Seconds()/base.Seconds(), "first/ls-tree")
	b.ReportMetric(cached.Seconds()/base.Seconds(), "cached/ls-tree")
	b.ReportMetric(float64(first.Microseconds())/float64(b.N), "first-us")
	b.ReportMetric(float64(base.Microseconds())/float64(b.N), "ls-tree-us")
}
