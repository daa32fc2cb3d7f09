package site_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

func randomText(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// rawObjectBytes sums the uncompressed sizes of the objects rev-list
// finds for args in the repository at dir (what the commits bring, before
// git compresses them).
func rawObjectBytes(tb testing.TB, dir string, args ...string) int64 {
	tb.Helper()
	list := gitserver.Git(tb, "", append([]string{"--git-dir=" + dir, "rev-list", "--objects"}, args...)...)
	var ids strings.Builder
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			ids.WriteString(f[0] + "\n")
		}
	}
	out := gitInput(tb, dir, ids.String(), "cat-file", "--batch-check=%(objectsize)")
	var n int64
	for _, l := range strings.Fields(out) {
		v, _ := strconv.ParseInt(l, 10, 64)
		n += v
	}
	return n
}

// BenchmarkExportDeps measures what the dependencies and LFS objects add
// to an export file, per revision, against the raw objects: rev1 (first
// export: a submodule with 200 commits of text, a remote base, 4 LFS
// objects of 1 MiB) and rev2 (--since rev1: one new submodule commit
// changing one 64 KiB file, one LFS object changed). Raw = the
// uncompressed git objects the new dependency commits bring (rev-list
// --objects, minus what the site has) and the LFS objects' sizes.
func BenchmarkExportDeps(b *testing.B) {
	w := newDepsWorld(b)
	for i := 0; i < 200; i++ {
		w.libSHA = w.lib.Commit("main", map[string]string{fmt.Sprintf("src/f%d.txt", i%20): randomText(8 << 10)})
	}
	lfs1 := make([][]byte, 4)
	for i := range lfs1 {
		lfs1[i] = []byte(randomText(1 << 20))
		w.lfsUp.Upload(b, "fleet/apps", lfs1[i])
	}
	commitLFS := func(objs [][]byte) {
		files := map[string]string{}
		for i, o := range objs {
			files[fmt.Sprintf("models/m%d.bin", i)] = w.lfsUp.Upload(b, "fleet/apps", o).Pointer()
		}
		w.apps.Commit("main", files)
	}
	commitLFS(lfs1)
	lib1 := w.libSHA
	rev1 := w.release([]byte("small\n"))
	// Each revision exported from a clone as it was when it was released.
	dir1 := filepath.Join(b.TempDir(), "apps.git")
	gitserver.Git(b, "", "clone", "--quiet", "--bare", w.appsURL, dir1)
	w.libSHA = w.lib.Commit("main", map[string]string{"src/f0.txt": randomText(64 << 10)})
	lfs2 := append([][]byte{[]byte(randomText(1 << 20))}, lfs1[1:]...)
	commitLFS(lfs2)
	rev2 := w.release([]byte("small\n"))

	raw1 := rawObjectBytes(b, w.lib.Dir, lib1) + rawObjectBytes(b, w.bas.Dir, w.baseSHA)
	raw2 := rawObjectBytes(b, w.lib.Dir, w.libSHA, "^"+lib1)
	lfsRaw1 := int64(4<<20) + int64(len("small\n"))
	lfsRaw2 := int64(1 << 20)
	var r1, r2 *sneakernet.ExportResult
	dir2 := filepath.Join(b.TempDir(), "apps.git")
	gitserver.Git(b, "", "clone", "--quiet", "--bare", w.appsURL, dir2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, x := range []struct {
			sha, since, dir string
			res             **sneakernet.ExportResult
		}{{rev1, "", dir1, &r1}, {rev2, rev1, dir2, &r2}} {
			res, err := sneakernet.Export(context.Background(), sneakernet.ExportOptions{
				Bundle: w.up.Repo("fleet/apps-bundles") + ":" + x.sha, GitDir: x.dir, Since: x.since,
				Output: filepath.Join(b.TempDir(), "x.tar"), LFSURL: w.lfsUp.URL("fleet/apps"),
				RemoteOptions: []registryclient.Option{anon},
			})
			if err != nil {
				b.Fatal(err)
			}
			*x.res = res
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(r1.GitDepsBytes), "rev1-deps-B")
	b.ReportMetric(float64(raw1), "rev1-deps-raw-B")
	b.ReportMetric(float64(r1.GitDepsBytes)/float64(raw1), "rev1-deps/raw")
	b.ReportMetric(float64(r1.LFSBytes)/float64(lfsRaw1), "rev1-lfs/raw")
	b.ReportMetric(float64(r2.GitDepsBytes), "rev2-deps-B")
	b.ReportMetric(float64(raw2), "rev2-deps-raw-B")
	b.ReportMetric(float64(r2.GitDepsBytes)/float64(raw2), "rev2-deps/raw")
	b.ReportMetric(float64(r2.LFSBytes)/float64(lfsRaw2), "rev2-lfs/raw")
	over := func(r *sneakernet.ExportResult) int64 {
		return r.Bytes - r.BlobBytes - r.GitBytes - r.GitDepsBytes - r.LFSBytes
	}
	b.ReportMetric(float64(over(r1)), "rev1-tar+manifest-B")
	b.ReportMetric(float64(over(r2)), "rev2-tar+manifest-B")
	b.Logf("rev1: file %d B (bundle blobs %d, git %d, deps %d in %d commits, LFS %d in %d objects); raw deps %d, raw LFS %d",
		r1.Bytes, r1.BlobBytes, r1.GitBytes, r1.GitDepsBytes, r1.GitDepCommits, r1.LFSBytes, r1.LFSObjects, raw1, lfsRaw1)
	b.Logf("rev2 --since rev1: file %d B (bundle blobs %d, git %d, deps %d in %d commits, LFS %d in %d objects); raw deps %d, raw LFS %d",
		r2.Bytes, r2.BlobBytes, r2.GitBytes, r2.GitDepsBytes, r2.GitDepCommits, r2.LFSBytes, r2.LFSObjects, raw2, lfsRaw2)
}

func gitInput(tb testing.TB, dir, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir=" + dir}, args...)...)
	cmd.Env = gitserver.Env()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}
