package edge_test

// Helm is imported by this external test package only: the daemon itself
// never imports it (internal/layering).

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/getter"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// chartSite is a running edge daemon whose repository's bundles hold
// charts of an upstream Helm repository made with Helm.
type chartSite struct {
	ed       *edged.Daemon
	helm     *helmrepo.Server
	git      *gitserver.Repo
	up       *regserver.Server
	bundles  string
	helmRepo string // the edge's URL for the upstream Helm repository
}

func startChartSite(t *testing.T) *chartSite {
	t.Helper()
	gitserver.RequireGit(t)
	gs := gitserver.New(t)
	s := &chartSite{up: regserver.Start(t, regserver.Options{}),
		helm: helmrepo.Serve(t,
			helmrepo.Chart{Name: "cert-manager", Version: "1.15.0", Image: "quay.io/jetstack/cert-manager-controller:v1.15.0"},
			helmrepo.Chart{Name: "cert-manager", Version: "1.16.0", Image: "quay.io/jetstack/cert-manager-controller:v1.16.0"},
			helmrepo.Chart{Name: "web", Version: "0.1.0+g1", Image: "ghcr.io/org/web:1"})}
	s.git = gs.CreateRepo(t, "fleet/apps")
	s.git.Commit("main", map[string]string{"README": "start"})
	s.bundles = s.up.Repo("fleet/apps-bundles")
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Repositories: []config.Repository{{URL: gs.URL("fleet/apps"), Bundles: s.bundles, Track: []string{"refs/heads/main"},
			KeepRevisions: 5, PollInterval: config.Duration{Duration: time.Second}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{s.up.Addr: {Insecure: true}},
	}
	s.ed = edged.Start(t, cfg)
	s.helmRepo = s.ed.URL + "/helm/" + strings.TrimPrefix(s.helm.URL, "http://")
	return s
}

// chart is the upstream archive of name-version in Helm's OCI form.
func (s *chartSite) chart(t *testing.T, file string) *helmrepo.OCIChart {
	return helmrepo.LoadOCIChart(t, filepath.Join(s.helm.Dir, file))
}

// release commits upstream and pushes its bundle, waiting until the edge
// has it complete.
func (s *chartSite) release(t *testing.T, entries ...helmrepo.Entry) string {
	t.Helper()
	sha := s.git.Commit("main", map[string]string{"rev": time.Now().String()})
	helmrepo.PushBundle(t, s.bundles, sha, entries...)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, r := range s.ed.Daemon.Sync.Status().Repos {
			for _, rv := range r.Revisions {
				if rv.Revision == sha && rv.State == syncer.StateComplete {
					return sha
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("revision %s not synced: %+v", sha, s.ed.Daemon.Sync.Status())
	return ""
}

// helmSettings is a Helm client environment in a fresh directory.
func helmSettings(t *testing.T) *cli.EnvSettings {
	dir := t.TempDir()
	st := cli.New()
	st.RepositoryConfig = filepath.Join(dir, "repositories.yaml")
	st.RepositoryCache = filepath.Join(dir, "cache")
	st.RegistryConfig = filepath.Join(dir, "registry.json")
	return st
}

// TestHelmRepositoryEndpoint proves the edge's Helm repository with Helm's
// own client: index loading (`helm repo add`) and `helm pull` from the edge
// give the upstream's bytes with the upstream stopped; a chart whose only
// revision is not complete on site is not listed; bad paths are 404.
func TestHelmRepositoryEndpoint(t *testing.T) {
	s := startChartSite(t)
	c115, c116, web := s.chart(t, "cert-manager-1.15.0.tgz"), s.chart(t, "cert-manager-1.16.0.tgz"), s.chart(t, "web-0.1.0+g1.tgz")
	app := testimage.Image(t, "linux/amd64", 1, 32<<10)
	s.release(t, helmrepo.ChartEntry(t, s.helm.URL, c115), helmrepo.ChartEntry(t, s.helm.URL, web), helmrepo.Entry{Ref: "ghcr.io/org/app:v1", Image: app})
	// Revision 2 brings cert-manager 1.16.0 and a new image; the image's
	// layer then goes missing on site, so revision 2 is not complete.
	app2 := testimage.Image(t, "linux/amd64", 1, 32<<10)
	s.release(t, helmrepo.ChartEntry(t, s.helm.URL, c116), helmrepo.Entry{Ref: "ghcr.io/org/app:v2", Image: app2})
	ls, _ := app2.Layers()
	ld, _ := ls[0].Digest()
	if err := os.RemoveAll(filepath.Join(s.ed.Daemon.Registry.StorageDir(), "docker/registry/v2/repositories/ghcr.io/org/app/_layers/sha256", ld.Hex)); err != nil {
		t.Fatal(err)
	}
	s.helm.Close() // from here on, only the edge has the charts

	// helm repo add: Helm downloads and loads the index (it validates
	// every entry).
	settings := helmSettings(t)
	cr, err := repo.NewChartRepository(&repo.Entry{Name: "edge", URL: s.helmRepo}, getter.All(settings))
	if err != nil {
		t.Fatal(err)
	}
	cr.CachePath = settings.RepositoryCache
	idxPath, err := cr.DownloadIndexFile()
	if err != nil {
		t.Fatalf("helm repo add %s: %v", s.helmRepo, err)
	}
	idx, err := repo.LoadIndexFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name, vs := range idx.Entries {
		for _, v := range vs {
			got = append(got, name+"-"+v.Version)
		}
	}
	if strings.Join(got, ",") != "cert-manager-1.15.0,web-0.1.0+g1" && strings.Join(got, ",") != "web-0.1.0+g1,cert-manager-1.15.0" {
		t.Fatalf("index lists %v, want cert-manager-1.15.0 and web-0.1.0+g1 (1.16.0's revision is not complete)", got)
	}
	cv, err := idx.Get("cert-manager", "1.15.0")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := c115.Manifest(); cv.Digest != want.Layers[0].Digest.Hex || cv.AppVersion != "" || cv.APIVersion != "v2" {
		t.Errorf("index entry %+v, want digest %s", cv, want.Layers[0].Digest.Hex)
	}

	// helm pull --repo <edge> cert-manager --version 1.15.0 (and web with
	// build metadata): the upstream's bytes.
	if err := os.WriteFile(settings.RepositoryConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, version string
		want          []byte
	}{{"cert-manager", "1.15.0", c115.Tgz}, {"web", "0.1.0+g1", web.Tgz}} {
		dest := t.TempDir()
		pull := action.NewPullWithOpts(action.WithConfig(&action.Configuration{}))
		pull.Settings, pull.RepoURL, pull.Version, pull.DestDir = settings, s.helmRepo, c.version, dest
		if out, err := pull.Run(c.name); err != nil {
			t.Fatalf("helm pull %s %s from the edge: %v %s", c.name, c.version, err, out)
		}
		b, err := os.ReadFile(filepath.Join(dest, c.name+"-"+c.version+".tgz"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, c.want) {
			t.Errorf("helm pull %s %s: %d bytes differ from the upstream archive's %d", c.name, c.version, len(b), len(c.want))
		}
	}
	pull := action.NewPullWithOpts(action.WithConfig(&action.Configuration{}))
	pull.Settings, pull.RepoURL, pull.Version, pull.DestDir = settings, s.helmRepo, "1.16.0", t.TempDir()
	if _, err := pull.Run("cert-manager"); err == nil {
		t.Errorf("helm pull of cert-manager 1.16.0 (revision not complete on site) succeeded")
	}

	// The same chart by OCI from the edge registry (helm pull oci://).
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(settings.RegistryConfig))
	if err != nil {
		t.Fatal(err)
	}
	hostPath := strings.ReplaceAll(strings.TrimPrefix(s.helm.URL, "http://"), ":", "_")
	res, err := rc.Pull(s.ed.Registry + "/" + hostPath + "/cert-manager:1.15.0")
	if err != nil {
		t.Fatalf("helm pull oci:// from the edge registry: %v", err)
	}
	if !bytes.Equal(res.Chart.Data, c115.Tgz) {
		t.Errorf("OCI pull from the edge registry: bytes differ from the upstream archive")
	}

	// Bad requests are 404 (HEAD and GET alike), never 500.
	hp := "/helm/" + strings.TrimPrefix(s.helm.URL, "http://")
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"HEAD", hp + "/index.yaml", 200},
		{"HEAD", hp + "/cert-manager-1.15.0.tgz", 200},
		{"GET", hp + "/cert-manager-1.16.0.tgz", 404},
		{"GET", hp + "/../index.yaml", 404},
		{"GET", "/helm/../git/x", 404},
		{"GET", hp + "/%2e%2e/index.yaml", 404},
		{"GET", strings.Replace(hp, ":", "%3A", 1) + "%2Findex.yaml", 404},
		{"GET", hp + "%2Fcert-manager-1.15.0.tgz", 404},
		{"GET", "/helm/charts.unknown.example/index.yaml", 404},
		{"GET", "/helm/index.yaml", 404},
		{"GET", "/helm/", 404},
		{"GET", hp + "/Chart.yaml", 404},
		{"GET", hp + "/%zz.tgz", 400}, // net/http refuses a bad escape before any handler
		{"POST", hp + "/index.yaml", 405},
	} {
		// Sent as written: no client-side cleaning or escaping.
		req, err := http.NewRequest(tc.method, s.ed.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = tc.path
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
		}
		if tc.method == "HEAD" && resp.StatusCode == 200 && resp.ContentLength <= 0 {
			t.Errorf("HEAD %s: no Content-Length", tc.path)
		}
	}
}
