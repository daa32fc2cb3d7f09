package gitmirror_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// benchRepo builds, with fast-import, an upstream repository like the
// baseline in FACTS.md: 2,000 commits of ~4 KiB text changes over 200 files
// (about 8–9 MiB packed).
func benchRepo(b *testing.B) (*gitserver.Server, *gitserver.Repo) {
	b.Helper()
	up := gitserver.New(b)
	r := up.CreateRepo(b, "bench/repo")
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("edge ship rig link argo sync bundle mirror registry layer digest blob index manifest " +
		"revision commit branch tag deploy rollout cluster node pod image tarball offline satellite")
	var sb strings.Builder
	for i := 1; i <= 2000; i++ {
		var text strings.Builder
		for text.Len() < 4096 {
			text.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				fmt.Fprintf(&text, " %d\n", rng.Uint64())
			} else {
				text.WriteByte(' ')
			}
		}
		fmt.Fprintf(&sb, "commit refs/heads/main\nmark :%d\ncommitter bench <b@ballast.invalid> %d +0000\ndata %d\n%s\n",
			i, 1700000000+i*60, len(fmt.Sprintf("change %d", i)), fmt.Sprintf("change %d", i))
		if i > 1 {
			fmt.Fprintf(&sb, "from :%d\n", i-1)
		}
		fmt.Fprintf(&sb, "M 100644 inline dir%d/file%d.txt\ndata %d\n%s\n", i%20, i%200, text.Len(), text.String())
	}
	r.Import(strings.NewReader(sb.String()))
	r.Git("repack", "-a", "-d", "-q")
	return up, r
}

func timeGit(b *testing.B, dir string, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	gitserver.Git(b, dir, args...)
	return time.Since(start)
}

// BenchmarkClone clones the same repository from git http-backend directly
// and through the mirror, alternately, and reports mirror speed as a ratio
// of direct speed (target ≥ 0.9).
func BenchmarkClone(b *testing.B) {
	up, _ := benchRepo(b)
	h := startMirror(b, "", []string{up.URL("bench/repo")}, nil)
	h.poll(up.URL("bench/repo"))
	for _, v := range []string{"0", "2"} {
		b.Run("v"+v, func(b *testing.B) {
			var direct, mirror time.Duration
			tmp := b.TempDir()
			for i := 0; b.Loop(); i++ {
				d1, d2 := filepath.Join(tmp, fmt.Sprintf("d%d", i)), filepath.Join(tmp, fmt.Sprintf("m%d", i))
				// Alternate the order so page cache and CPU frequency favour neither.
				if i%2 == 0 {
					direct += timeGit(b, "", "-c", "protocol.version="+v, "clone", "--bare", "--quiet", up.URL("bench/repo"), d1)
					mirror += timeGit(b, "", "-c", "protocol.version="+v, "clone", "--bare", "--quiet", h.url(up.URL("bench/repo")), d2)
				} else {
					mirror += timeGit(b, "", "-c", "protocol.version="+v, "clone", "--bare", "--quiet", h.url(up.URL("bench/repo")), d2)
					direct += timeGit(b, "", "-c", "protocol.version="+v, "clone", "--bare", "--quiet", up.URL("bench/repo"), d1)
				}
				os.RemoveAll(d1)
				os.RemoveAll(d2)
			}
			b.ReportMetric(direct.Seconds()/float64(b.N), "direct-s/clone")
			b.ReportMetric(mirror.Seconds()/float64(b.N), "mirror-s/clone")
			b.ReportMetric(direct.Seconds()/mirror.Seconds(), "speed-ratio")
		})
	}
}

// BenchmarkFetch fetches 10 new upstream commits into an up-to-date clone,
// directly and through the mirror (after the mirror's own poll, untimed).
func BenchmarkFetch(b *testing.B) {
	up, r := benchRepo(b)
	h := startMirror(b, "", []string{up.URL("bench/repo")}, nil)
	h.poll(up.URL("bench/repo"))
	tmp := b.TempDir()
	dc, mc := filepath.Join(tmp, "direct"), filepath.Join(tmp, "mirror")
	gitserver.Git(b, "", "clone", "--bare", "--quiet", up.URL("bench/repo"), dc)
	gitserver.Git(b, "", "clone", "--bare", "--quiet", h.url(up.URL("bench/repo")), mc)
	var direct, mirror time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		r.CommitN("main", 10)
		h.poll(up.URL("bench/repo"))
		b.StartTimer()
		if i%2 == 0 {
			direct += timeGit(b, dc, "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
			mirror += timeGit(b, mc, "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
		} else {
			mirror += timeGit(b, mc, "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
			direct += timeGit(b, dc, "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
		}
	}
	b.ReportMetric(direct.Seconds()/float64(b.N), "direct-s/fetch")
	b.ReportMetric(mirror.Seconds()/float64(b.N), "mirror-s/fetch")
	b.ReportMetric(direct.Seconds()/mirror.Seconds(), "speed-ratio")
}

// BenchmarkNoChangePoll measures what one poll costs the upstream link when
// nothing changed, next to a plain `git fetch` of the same refs as baseline.
func BenchmarkNoChangePoll(b *testing.B) {
	up, _ := benchRepo(b)
	h := startMirror(b, "", []string{up.URL("bench/repo")}, nil)
	h.poll(up.URL("bench/repo"))
	base := filepath.Join(b.TempDir(), "base")
	gitserver.Git(b, "", "clone", "--bare", "--quiet", up.URL("bench/repo"), base)

	up.ResetStats()
	gitserver.Git(b, base, "fetch", "--quiet", "--prune", "origin", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
	fetchStats := up.Stats()

	up.ResetStats()
	for b.Loop() {
		h.poll(up.URL("bench/repo"))
	}
	s := up.Stats()
	n := float64(b.N)
	b.ReportMetric(float64(s.Requests)/n, "requests/poll")
	b.ReportMetric(float64(s.BytesIn+s.BytesOut)/n, "bytes/poll")
	b.ReportMetric(float64(fetchStats.Requests), "git-fetch-requests")
	b.ReportMetric(float64(fetchStats.BytesIn+fetchStats.BytesOut), "git-fetch-bytes")
}
