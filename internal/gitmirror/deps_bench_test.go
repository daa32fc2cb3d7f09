package gitmirror_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// BenchmarkGitDeps measures what the mirror spends on the other
// repositories one revision needs — a submodule with the 2,000-commit
// history of benchRepo, a small nested one and a remote base pinned by tag
// — against what a client pays for the same revision without the mirror:
// `git clone --recurse-submodules` plus Kustomize's
// `git fetch --depth=1 origin <tag>` of the base. It reports upstream
// response bytes and wall time of both and their ratios (mirror/baseline),
// alternating the two in each iteration; deps-bytes-ratio leaves out the
// superproject's own bytes (a bare clone of it) on both sides.
func BenchmarkGitDeps(b *testing.B) {
	up, lib := benchRepo(b)
	libSHA := lib.Rev("main")
	small := up.CreateRepo(b, "bench/small")
	smallSHA := small.Commit("main", map[string]string{"s.txt": "small\n"})
	base := up.CreateRepo(b, "bench/base")
	v1 := base.Commit("main", map[string]string{"deploy/kustomization.yaml": "resources: []\n"})
	base.Tag("v1", v1)
	apps := up.CreateRepo(b, "bench/apps")
	rev := apps.CommitChange("main", gitserver.Change{
		Files: map[string]string{".gitmodules": "[submodule \"lib\"]\n\tpath = lib\n\turl = " + up.URL("bench/repo") + "\n" +
			"[submodule \"small\"]\n\tpath = small\n\turl = ../small.git\n"},
		Gitlinks: map[string]string{"lib": libSHA, "small": smallSHA},
	})
	var mBytes, cBytes, pBytes int64
	var mTime, cTime, pTime time.Duration
	for i := 0; i < b.N; i++ {
		// The mirror, from an empty data dir: the revision's own
		// repository, then its dependencies (the mirror's loop may start
		// on them as soon as the first poll lands: counted all together).
		ctx := context.Background()
		up.ResetStats()
		start := time.Now()
		h := startMirror(b, "", []string{up.URL("bench/apps")}, nil)
		h.poll(up.URL("bench/apps"))
		if err := h.m.NeedGitDeps(ctx, up.URL("bench/apps"), rev, []gitmirror.Dep{{URL: up.URL("bench/base"), Commit: v1, Ref: "v1"}}); err != nil {
			b.Fatal(err)
		}
		if err := h.m.SyncGitDeps(ctx); err != nil {
			b.Fatal(err)
		}
		mTime += time.Since(start)
		mBytes += up.Stats().BytesOut
		h.stop()

		// The baseline: a client fetching the same revision with its
		// submodules, and the base as Kustomize does.
		dir := b.TempDir()
		up.ResetStats()
		start = time.Now()
		gitserver.Git(b, dir, "clone", "-q", "--recurse-submodules", up.URL("bench/apps"), "co")
		gitserver.Git(b, dir, "init", "-q", "base")
		gitserver.Git(b, filepath.Join(dir, "base"), "fetch", "-q", "--depth=1", up.URL("bench/base"), "v1")
		cTime += time.Since(start)
		cBytes += up.Stats().BytesOut
		// The superproject alone, to tell the dependencies' share.
		up.ResetStats()
		start = time.Now()
		gitserver.Git(b, dir, "clone", "-q", "--bare", up.URL("bench/apps"), "plain")
		pTime += time.Since(start)
		pBytes += up.Stats().BytesOut
	}
	n := float64(b.N)
	b.ReportMetric(float64(mBytes)/n, "mirror-B/rev")
	b.ReportMetric(float64(cBytes)/n, "clone-B/rev")
	b.ReportMetric(float64(mBytes)/float64(cBytes), "bytes-ratio")
	b.ReportMetric(float64(mBytes-pBytes)/float64(cBytes-pBytes), "deps-bytes-ratio")
	b.ReportMetric(mTime.Seconds()/n, "mirror-s/rev")
	b.ReportMetric(cTime.Seconds()/n, "clone-s/rev")
	b.ReportMetric(mTime.Seconds()/cTime.Seconds(), "time-ratio")
}
