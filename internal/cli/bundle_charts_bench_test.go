package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// helmVersion is the Helm module version go.mod requires.
func helmVersion(tb testing.TB) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "helm.sh/helm/v3" {
				return d.Version
			}
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "helm.sh/helm/v3").Output()
	if err != nil {
		tb.Fatalf("go list -m helm.sh/helm/v3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// helmCLI is the helm CLI at go.mod's version: $BALLAST_HELM, the e2e
// dependencies' cached build, or one built now from the module cache
// (`go build helm.sh/helm/v3/cmd/helm` in a scratch module, cached in
// ~/.cache/ballast/bench).
func helmCLI(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("BALLAST_HELM"); p != "" {
		return p
	}
	v := helmVersion(tb)
	home, err := os.UserHomeDir()
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(home, ".cache/ballast/e2e/helm-"+v, "helm"),
		filepath.Join(home, ".cache/ballast/bench/helm-"+v, "helm"),
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	realtest.LookPath(tb, "go", "the Go toolchain builds helm")
	mod := tb.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module helmbuild\n\ngo 1.26\n\nrequire helm.sh/helm/v3 "+v+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(home, ".cache/ballast/bench/helm-"+v, "helm")
	cmd := exec.Command("go", "build", "-o", out, "helm.sh/helm/v3/cmd/helm")
	cmd.Dir, cmd.Env = mod, append(os.Environ(), "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build helm %s: %v\n%s", v, err, b)
	}
	return out
}

// padded is a chart whose archive is about size bytes (incompressible
// padding in files/pad.txt), running image.
func padded(tb testing.TB, name, version, image string, size int) helmrepo.Chart {
	raw := make([]byte, size*3/4)
	if _, err := rand.Read(raw); err != nil {
		tb.Fatal(err)
	}
	return helmrepo.Chart{Name: name, Version: version, Image: image,
		Files: map[string]string{"files/pad.txt": base64.StdEncoding.EncodeToString(raw)}}
}

// BenchmarkBundleChartsVsHelmPull bundles a revision whose Application has
// 5 charts (3 from an HTTP Helm repository, 2 from an OCI registry; 32 KiB
// to 512 KiB each, 1 MiB in all) into a fresh bundles repository each
// time, without a chart cache, and pulls the same 5 charts with the helm
// CLI (`helm pull`, one per chart, as a user would), alternating.
// speed-vs-helm-pull > 1 means bundle (render, resolve, copy images and
// charts, push the index) took less time than helm pull alone;
// chart-bytes is what the charts add to the bundle, chart-overhead that
// over the archives' own bytes.
func BenchmarkBundleChartsVsHelmPull(b *testing.B) {
	helm := helmCLI(b)
	reg := regserver.Start(b, regserver.Options{})
	img := reg.Repo("src/app:1")
	ref, _ := name.ParseReference(img, name.Insecure)
	if err := remote.Write(ref, testimage.Image(b, "linux/amd64", 1, 4<<10)); err != nil {
		b.Fatal(err)
	}
	sizes := []int{32 << 10, 128 << 10, 512 << 10, 64 << 10, 256 << 10}
	httpCharts := []helmrepo.Chart{padded(b, "c0", "1.0.0", img, sizes[0]), padded(b, "c1", "1.0.0", img, sizes[1]), padded(b, "c2", "1.0.0", img, sizes[2])}
	srv := helmrepo.Serve(b, httpCharts...)
	var archiveBytes int64
	for _, c := range httpCharts {
		fi, err := os.Stat(filepath.Join(srv.Dir, c.Name+"-"+c.Version+".tgz"))
		if err != nil {
			b.Fatal(err)
		}
		archiveBytes += fi.Size()
	}
	for i := 3; i < 5; i++ {
		archiveBytes += int64(len(helmPushChart(b, reg.Repo("charts"), padded(b, fmt.Sprintf("c%d", i), "1.0.0", img, sizes[i]))))
	}
	app := "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: five}\nspec:\n  sources:\n"
	for i := 0; i < 3; i++ {
		app += fmt.Sprintf("    - {repoURL: %s, chart: c%d, targetRevision: 1.0.x}\n", srv.URL, i)
	}
	for i := 3; i < 5; i++ {
		app += fmt.Sprintf("    - {repoURL: oci://%s, chart: c%d, targetRevision: 1.0.x}\n", reg.Repo("charts"), i)
	}
	repo := b.TempDir()
	bundleWriteFiles(b, repo, map[string]string{"argocd/five.yaml": app})
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "x"}} {
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git: %v %s", err, out)
		}
	}
	helmEnv := append(os.Environ(), "HELM_CACHE_HOME="+b.TempDir(), "HELM_CONFIG_HOME="+b.TempDir(), "HELM_DATA_HOME="+b.TempDir())
	var tBundle, tHelm time.Duration
	var chartBytes int64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		start := time.Now()
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"bundle", "-o", "json", "--repo", repo, "--to", reg.Repo(fmt.Sprintf("b%d/bundles", n)), "--app", "argocd/five.yaml"}, &out, &errOut)
		tBundle += time.Since(start)
		if code != 0 {
			b.Fatalf("bundle: exit %d: %s", code, errOut.String())
		}
		var r release.Result
		if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Charts) != 5 {
			b.Fatalf("bundle: %v, %d charts", err, len(r.Charts))
		}
		chartBytes = r.ChartBytes

		dest := b.TempDir()
		start = time.Now()
		for i := 0; i < 5; i++ {
			args := []string{"pull", "--repo", srv.URL, fmt.Sprintf("c%d", i), "--version", "1.0.x", "-d", dest}
			if i >= 3 {
				args = []string{"pull", fmt.Sprintf("oci://%s/c%d", reg.Repo("charts"), i), "--version", "1.0.x", "--plain-http", "-d", dest}
			}
			cmd := exec.Command(helm, args...)
			cmd.Env = helmEnv
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("helm %v: %v\n%s", args, err, out)
			}
		}
		tHelm += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(tHelm.Seconds()/tBundle.Seconds(), "speed-vs-helm-pull")
	b.ReportMetric(float64(tBundle.Milliseconds())/float64(b.N), "bundle-ms")
	b.ReportMetric(float64(tHelm.Milliseconds())/float64(b.N), "helm-pull-ms")
	b.ReportMetric(float64(chartBytes), "chart-bytes")
	b.ReportMetric(float64(chartBytes)/float64(archiveBytes), "chart-overhead")
}
