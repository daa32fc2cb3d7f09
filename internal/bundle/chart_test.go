package bundle

import (
	"strings"
	"testing"
)

func TestChartEntryRoundTrip(t *testing.T) {
	s := newStore()
	d, _ := s.multiArch(t, "b", "x")
	img := Image{Ref: mustRef(t, "docker.io/library/nginx:1"), Descriptor: d}
	chart := Image{Ref: mustRef(t, "charts.example.com/stable/cert-manager:1.15.0"), Descriptor: d,
		Chart: &Chart{RepoURL: "https://charts.example.com/stable", Name: "cert-manager", Version: "1.15.0"}}
	src := Image{Ref: mustRef(t, "registry.example.com/manifests/app:1.0.0"), Descriptor: d,
		Chart: &Chart{RepoURL: "oci://registry.example.com/manifests/app", Version: "1.0.0"}}
	raw, _, err := Build(Bundle{Revision: rev, Images: []Image{chart, img, src}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, im := range b.Images {
		got[im.Ref.String()] = im.Name()
	}
	want := map[string]string{
		"docker.io/library/nginx:1":                     "docker.io/library/nginx:1",
		"charts.example.com/stable/cert-manager:1.15.0": "chart cert-manager 1.15.0 from https://charts.example.com/stable",
		"registry.example.com/manifests/app:1.0.0":      "oci source oci://registry.example.com/manifests/app 1.0.0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: name %q, want %q", k, got[k], v)
		}
	}
}

func TestParseRefusesBadChartAnnotations(t *testing.T) {
	base := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","artifactType":"application/vnd.ballast.bundle.v1+json",
"annotations":{"org.opencontainers.image.revision":"` + rev + `","org.opencontainers.image.created":"2026-01-01T00:00:00Z"},
"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,"digest":"sha256:` + strings.Repeat("a", 64) + `",
"annotations":{"io.ballast.image.ref":"charts.example.com/x/y:1"%s}}]}`
	for name, extra := range map[string]string{
		"version without repo": `,"io.ballast.chart.version":"1"`,
		"repo without version": `,"io.ballast.chart.repo":"https://charts.example.com/x"`,
		"name only":            `,"io.ballast.chart.name":"y"`,
		"newline in name":      `,"io.ballast.chart.repo":"https://c/x","io.ballast.chart.version":"1","io.ballast.chart.name":"a\nb"`,
		"space in version":     `,"io.ballast.chart.repo":"https://c/x","io.ballast.chart.version":"1 2"`,
		"huge repo":            `,"io.ballast.chart.repo":"https://c/` + strings.Repeat("x", 3000) + `","io.ballast.chart.version":"1"`,
	} {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(base, "%s", extra, 1)
			if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "io.ballast.chart") {
				t.Fatalf("Parse: %v, want an error naming the chart annotation", err)
			}
		})
	}
	if _, err := Parse([]byte(strings.Replace(base, "%s", `,"io.ballast.chart.repo":"https://c/x","io.ballast.chart.version":"1"`, 1))); err != nil {
		t.Fatalf("valid OCI source entry: %v", err)
	}
}

func TestHelmRepoChartRef(t *testing.T) {
	for _, c := range []struct{ repo, name, version, want, err string }{
		{"https://charts.example.com/stable", "cert-manager", "1.15.0", "charts.example.com/stable/cert-manager:1.15.0", ""},
		{"https://charts.example.com/stable/", "cert-manager", "v1.15.0", "charts.example.com/stable/cert-manager:v1.15.0", ""},
		{"https://charts.example.com", "redis", "1.0.0+build.7", "charts.example.com/redis:1.0.0_build.7", ""},
		{"http://127.0.0.1:8879/Charts", "App", "0.1.0", "127.0.0.1:8879/charts/app:0.1.0", ""},
		{"oci://registry.example.com/charts", "x", "1", "", "scheme"},
		{"https://user:pw@charts.example.com", "x", "1", "", "credentials"},
		{"https://charts.example.com/a/../b", "x", "1", "", "path segment"},
		{"https://charts.example.com/?q=1", "x", "1", "", "query"},
		{"https://charts.example.com", "a/b", "1", "", "path component"},
		{"https://charts.example.com", "x", "1.0.0 beta", "", "OCI tag"},
		{"https://charts.example.com/~user", "x", "1", "", "charts.example.com"},
	} {
		r, err := HelmRepoChartRef(c.repo, c.name, c.version)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("HelmRepoChartRef(%q, %q, %q) = %v, %v; want error with %q", c.repo, c.name, c.version, r, err, c.err)
			}
			continue
		}
		if err != nil || r.String() != c.want {
			t.Errorf("HelmRepoChartRef(%q, %q, %q) = %v, %v; want %s", c.repo, c.name, c.version, r, err, c.want)
		}
	}
}

func FuzzHelmRepoChartRef(f *testing.F) {
	f.Add("https://charts.example.com/stable", "cert-manager", "1.15.0")
	f.Add("http://127.0.0.1:1/a//b", "x", "1+2")
	f.Fuzz(func(t *testing.T, repo, name, version string) {
		r, err := HelmRepoChartRef(repo, name, version)
		if err != nil {
			return
		}
		if r.Tag == "" || r.Registry == "" {
			t.Fatalf("HelmRepoChartRef(%q, %q, %q) = %v without registry or tag", repo, name, version, r)
		}
	})
}
