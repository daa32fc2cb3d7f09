// Package helmrepo makes Helm charts with Helm's own library and serves
// them as a classic HTTP Helm repository (index.yaml + .tgz, made by
// repo.IndexDirectory) on loopback, for tests.
package helmrepo

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// Chart describes a small chart: one Deployment whose container image is
// {{ .Values.image }}, plus a second container when the value `sidecar`
// is set (so value files and parameters visibly change the images).
type Chart struct {
	Name    string
	Version string
	Image   string            // the default value of `image`
	Files   map[string]string // more files inside the chart, e.g. "values-edge.yaml"
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app: {{ .Chart.Name }}}
  template:
    metadata:
      labels: {app: {{ .Chart.Name }}}
    spec:
      containers:
        - name: main
          image: {{ .Values.image }}
{{- if .Values.sidecar }}
        - name: sidecar
          image: {{ .Values.sidecar }}
{{- end }}
`

// Dir writes the chart's source directory under parent and returns it.
func Dir(t testing.TB, parent string, c Chart) string {
	t.Helper()
	dir := filepath.Join(parent, c.Name+"-"+c.Version+"-src", c.Name)
	files := map[string]string{
		"Chart.yaml":                "apiVersion: v2\nname: " + c.Name + "\nversion: " + c.Version + "\n",
		"values.yaml":               "image: " + c.Image + "\nsidecar: \"\"\n",
		"templates/deployment.yaml": deployment,
	}
	for k, v := range c.Files {
		files[k] = v
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Package writes the chart's archive (<name>-<version>.tgz) into outDir
// with chartutil.Save, as `helm package` does, and returns its path.
func Package(t testing.TB, outDir string, c Chart) string {
	t.Helper()
	chrt, err := loader.LoadDir(Dir(t, t.TempDir(), c))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := chartutil.Save(chrt, outDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Server is a Helm repository on loopback.
type Server struct {
	URL  string // http://127.0.0.1:port, the repoURL
	Dir  string // served directory: index.yaml and the archives
	srv  *httptest.Server
	down atomic.Bool
	hits atomic.Int64
}

// Serve packages charts into a fresh directory, writes its index.yaml
// with repo.IndexDirectory (relative URLs, sha256 digests) and serves it
// until the test ends.
func Serve(t testing.TB, charts ...Chart) *Server {
	t.Helper()
	s := &Server{Dir: t.TempDir()}
	for _, c := range charts {
		Package(t, s.Dir, c)
	}
	s.Reindex(t)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		http.FileServer(http.Dir(s.Dir)).ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	return s
}

// Reindex rewrites index.yaml from the archives in Dir.
func (s *Server) Reindex(t testing.TB) {
	t.Helper()
	idx, err := repo.IndexDirectory(s.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	idx.SortEntries()
	if err := idx.WriteFile(filepath.Join(s.Dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// SetDown makes every request fail with 503 (true) or be served (false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Close stops the server: connections are refused from then on.
func (s *Server) Close() { s.srv.Close() }

// Hits is the number of requests served so far.
func (s *Server) Hits() int64 { return s.hits.Load() }
