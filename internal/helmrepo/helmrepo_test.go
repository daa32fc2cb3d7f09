package helmrepo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
)

// memStore holds bundles and content in memory and counts what the
// handler reads. The endpoint against the real edge registry and Helm's
// client is internal/edge's TestHelmRepositoryEndpoint; this one pins the
// cache and the limits, which need counting.
type memStore struct {
	mu        sync.Mutex
	revs      []Revision
	bundles   map[string]*bundle.Bundle // by revision
	manifests map[v1.Hash][]byte
	blobs     map[v1.Hash][]byte
	reads     map[string]int // "bundle", "manifest", "blob:<digest>"
}

func newMemStore() *memStore {
	return &memStore{bundles: map[string]*bundle.Bundle{}, manifests: map[v1.Hash][]byte{}, blobs: map[v1.Hash][]byte{}, reads: map[string]int{}}
}

func (m *memStore) count(k string) {
	m.mu.Lock()
	m.reads[k]++
	m.mu.Unlock()
}

func (m *memStore) Revisions(context.Context) ([]Revision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Revision(nil), m.revs...), nil
}

func (m *memStore) Bundle(_ context.Context, r Revision) (*bundle.Bundle, error) {
	m.count("bundle")
	return m.bundles[r.Revision], nil
}

func (m *memStore) Manifest(_ context.Context, _ string, d v1.Descriptor) ([]byte, error) {
	m.count("manifest")
	if b, ok := m.manifests[d.Digest]; ok {
		return b, nil
	}
	return nil, oci.ErrNotFound
}

func (m *memStore) Blob(_ context.Context, _ string, d v1.Descriptor) (io.ReadCloser, error) {
	m.count("blob:" + d.Digest.String())
	if b, ok := m.blobs[d.Digest]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return nil, oci.ErrNotFound
}

func sha(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

// addChart stores a chart in Helm's OCI form with the given config and
// archive and returns its bundle entry and layer digest.
func (m *memStore) addChart(t testing.TB, repoURL, name, version string, cfg, tgz []byte) (bundle.Image, v1.Hash) {
	t.Helper()
	man := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: bundle.HelmConfigMediaType, Digest: sha(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: bundle.HelmChartMediaType, Digest: sha(tgz), Size: int64(len(tgz))}}}
	raw, _ := json.Marshal(man)
	m.manifests[sha(raw)] = raw
	m.blobs[sha(cfg)], m.blobs[sha(tgz)] = cfg, tgz
	ref, err := bundle.HelmRepoChartRef(repoURL, name, version)
	if err != nil {
		t.Fatal(err)
	}
	return bundle.Image{Ref: ref, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: sha(raw), Size: int64(len(raw))},
		Chart: &bundle.Chart{RepoURL: repoURL, Name: name, Version: version}}, sha(tgz)
}

func (m *memStore) addRevision(rev string, created time.Time, ims ...bundle.Image) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bundles[rev] = &bundle.Bundle{Revision: rev, Created: created, Images: ims}
	m.revs = append(m.revs, Revision{RepoURL: "https://git.example.com/fleet/apps.git", Revision: rev, Digest: sha([]byte(rev))})
}

func get(t testing.TB, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, "http://edge"+path, nil)
	func() {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			} else if v != nil {
				rec.Code = -1 // aborted mid-body
			}
		}()
		h.ServeHTTP(rec, req)
	}()
	return rec
}

func cfgJSON(name, version string, extra string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"v2","name":%q,"version":%q%s}`, name, version, extra))
}

func TestIndexCachedPerRevisionSet(t *testing.T) {
	const repoURL = "https://charts.example.com/stable"
	st := newMemStore()
	a, _ := st.addChart(t, repoURL, "cert-manager", "1.15.0", cfgJSON("cert-manager", "1.15.0", `,"appVersion":"v1.15.0"`), []byte("tgz-1.15.0"))
	b, _ := st.addChart(t, repoURL, "cert-manager", "1.16.0", cfgJSON("cert-manager", "1.16.0", ""), []byte("tgz-1.16.0"))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	img, _ := imageref.Parse("ghcr.io/org/app:v1")
	st.addRevision(strings.Repeat("a", 40), t0, a, bundle.Image{Ref: img, Descriptor: v1.Descriptor{Digest: sha([]byte("x"))}})
	h := New(st, "/helm/", nil)

	for i := 0; i < 3; i++ {
		rec := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml")
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "version: 1.15.0") || strings.Contains(rec.Body.String(), "1.16.0") {
			t.Fatalf("index %d: %d\n%s", i, rec.Code, rec.Body)
		}
	}
	if h.builds != 1 || st.reads["bundle"] != 1 {
		t.Fatalf("three requests: %d builds, %d bundle reads; want 1 and 1", h.builds, st.reads["bundle"])
	}
	// A new complete revision changes the set: one more build.
	st.addRevision(strings.Repeat("b", 40), t0.Add(time.Hour), a, b)
	rec := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml")
	if h.builds != 2 || !strings.Contains(rec.Body.String(), "version: 1.16.0") {
		t.Fatalf("after a new revision: %d builds\n%s", h.builds, rec.Body)
	}
	// Same bytes for the same set, whatever the order revisions come in.
	st.revs[0], st.revs[1] = st.revs[1], st.revs[0]
	if again := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml"); h.builds != 2 || again.Body.String() != rec.Body.String() {
		t.Fatalf("reordered revisions rebuilt (%d builds) or changed the index", h.builds)
	}
	if got := get(t, h, "GET", "/helm/charts.example.com/stable/cert-manager-1.16.0.tgz"); got.Code != 200 || got.Body.String() != "tgz-1.16.0" {
		t.Fatalf("archive: %d %q", got.Code, got.Body)
	}

	// A revision whose index is on site but whose content is not (damaged,
	// then made whole by sync under the same index digest): not listed,
	// and looked at again once RecheckIncomplete has passed.
	c, _ := st.addChart(t, repoURL, "cert-manager", "1.17.0", cfgJSON("cert-manager", "1.17.0", ""), []byte("tgz-1.17.0"))
	st.addRevision(strings.Repeat("c", 40), t0.Add(2*time.Hour), c)
	whole := st.bundles[strings.Repeat("c", 40)]
	delete(st.bundles, whole.Revision)
	now := time.Now()
	h.now = func() time.Time { return now }
	if rec := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml"); h.builds != 3 || strings.Contains(rec.Body.String(), "1.17.0") {
		t.Fatalf("an incomplete revision's chart is listed (%d builds)", h.builds)
	}
	st.bundles[whole.Revision] = whole
	if rec := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml"); h.builds != 3 || strings.Contains(rec.Body.String(), "1.17.0") {
		t.Fatalf("rebuilt before RecheckIncomplete (%d builds)", h.builds)
	}
	now = now.Add(RecheckIncomplete)
	if rec := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml"); h.builds != 4 || !strings.Contains(rec.Body.String(), "1.17.0") {
		t.Fatalf("the revision made whole is not listed after RecheckIncomplete (%d builds)\n%s", h.builds, rec.Body)
	}
	if get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml"); h.builds != 4 {
		t.Fatalf("a complete set is rebuilt (%d builds)", h.builds)
	}
}

func TestIndexLimitsAndChecks(t *testing.T) {
	const repoURL = "https://charts.example.com/stable"
	st := newMemStore()
	big, _ := st.addChart(t, repoURL, "big", "1.0.0", cfgJSON("big", "1.0.0", `,"description":"`+strings.Repeat("x", MaxConfigSize)+`"`), []byte("tgz-big"))
	liar, _ := st.addChart(t, repoURL, "liar", "1.0.0", cfgJSON("other", "1.0.0", ""), []byte("tgz-liar"))
	bad, badLayer := st.addChart(t, repoURL, "bad", "1.0.0", cfgJSON("bad", "1.0.0", ""), []byte("tgz-bad"))
	ok, _ := st.addChart(t, repoURL, "ok", "1.0.0", cfgJSON("ok", "1.0.0", ""), []byte("tgz-ok"))
	ociChart := bundle.Image{Ref: must(imageref.Parse("registry.example.com/charts/x:1")), Descriptor: ok.Descriptor,
		Chart: &bundle.Chart{RepoURL: "oci://registry.example.com/charts", Name: "x", Version: "1"}}
	st.addRevision(strings.Repeat("a", 40), time.Unix(0, 0), big, liar, bad, ok, ociChart)
	// The archive of "bad" rots on disk after the index was built.
	h := New(st, "/helm/", nil)
	rec := get(t, h, "GET", "/helm/charts.example.com/stable/index.yaml")
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "ok:") || strings.Contains(body, "big:") || strings.Contains(body, "liar") || strings.Contains(body, "other") {
		t.Fatalf("index: %d\n%s", rec.Code, body)
	}
	bigCfg := sha(cfgJSON("big", "1.0.0", `,"description":"`+strings.Repeat("x", MaxConfigSize)+`"`))
	if st.reads["blob:"+bigCfg.String()] != 0 {
		t.Errorf("the oversized config blob was read")
	}
	if get(t, h, "GET", "/helm/registry.example.com/charts/index.yaml").Code != 404 {
		t.Errorf("an OCI chart's repository is served as a Helm repository")
	}
	st.blobs[badLayer] = []byte("tgz-BAD")
	if got := get(t, h, "GET", "/helm/charts.example.com/stable/bad-1.0.0.tgz"); got.Code != -1 || got.Body.Len() >= len("tgz-BAD") {
		t.Errorf("an archive whose bytes no longer match its digest was served whole: %d %q", got.Code, got.Body)
	}
	delete(st.blobs, badLayer)
	for _, m := range []string{"GET", "HEAD"} {
		if got := get(t, h, m, "/helm/charts.example.com/stable/bad-1.0.0.tgz"); got.Code != 404 {
			t.Errorf("%s of a missing archive: %d, want 404", m, got.Code)
		}
	}
	if got := get(t, h, "HEAD", "/helm/charts.example.com/stable/ok-1.0.0.tgz"); got.Code != 200 || got.Header().Get("Content-Length") != "6" || got.Body.Len() != 0 {
		t.Errorf("HEAD archive: %d %v %q", got.Code, got.Header(), got.Body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkIndex serves index.yaml for 200 chart versions in 5 revisions:
// the cached answer per request, against the build it saves (measured in
// the same run: the first request of a new handler). Reported: µs per
// cached request, µs per build, and the ratio.
func BenchmarkIndex(b *testing.B) {
	st := newMemStore()
	for r := 0; r < 5; r++ {
		var ims []bundle.Image
		for i := 0; i < 40; i++ {
			name, v := fmt.Sprintf("chart%02d", i), fmt.Sprintf("1.%d.0", r)
			im, _ := st.addChart(b, "https://charts.example.com/stable", name, v,
				cfgJSON(name, v, `,"description":"`+strings.Repeat("d", 400)+`"`), []byte("tgz-"+name+v))
			ims = append(ims, im)
		}
		st.addRevision(strings.Repeat(string(rune('a'+r)), 40), time.Unix(int64(r), 0), ims...)
	}
	const path = "/helm/charts.example.com/stable/index.yaml"
	const builds = 20
	start := time.Now()
	for i := 0; i < builds; i++ {
		if rec := get(b, New(st, "/helm/", nil), "GET", path); rec.Code != 200 {
			b.Fatalf("%d", rec.Code)
		}
	}
	build := time.Since(start) / builds
	h := New(st, "/helm/", nil)
	get(b, h, "GET", path)
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if rec := get(b, h, "GET", path); rec.Code != 200 {
			b.Fatalf("%d", rec.Code)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Nanoseconds())/1000, "µs/cached-request")
	b.ReportMetric(float64(build.Nanoseconds())/1000, "µs/build")
	b.ReportMetric(float64(build)/float64(per), "x-build-over-cached")
}

// A chart name the bundle allows (2 KiB of file-name characters) but YAML
// cannot key an entry by (over 1024 characters) leaves that chart out,
// not every chart of every repository.
func TestLongChartNameLeavesOnlyThatChartOut(t *testing.T) {
	m := newMemStore()
	long := strings.Repeat("n", 1100)
	good, _ := m.addChart(t, "https://charts.example.com/stable", "good", "1.0.0", []byte(`{"name":"good","version":"1.0.0"}`), []byte("tgz-good"))
	bad, _ := m.addChart(t, "https://charts.example.com/stable", "bad", "1.0.0", []byte(`{"name":"`+long+`","version":"1.0.0"}`), []byte("tgz-bad"))
	bad.Chart.Name = long // the image's ref cannot hold it; the bundle's chart annotation can
	m.addRevision(strings.Repeat("a", 40), time.Unix(1e9, 0), good, bad)
	rec := get(t, New(m, "/helm/", nil), http.MethodGet, "/helm/charts.example.com/stable/index.yaml")
	if rec.Code != http.StatusOK {
		t.Fatalf("index: %d %.200s", rec.Code, rec.Body.String())
	}
	if body := rec.Body.String(); !strings.Contains(body, "good-1.0.0.tgz") || strings.Contains(body, long) {
		t.Errorf("index: %.300s", body)
	}
}

// A chart whose metadata Helm could not read, or that YAML cannot write
// (nested too deep, characters or keys YAML cannot carry), is left out;
// the other charts are still served (one such entry used to answer 503
// for every repository, or make the index unreadable to Helm as a whole).
func TestHostileMetadataLeavesOnlyThatChartOut(t *testing.T) {
	for name, cfg := range map[string]string{
		"deep":         `{"name":"bad","version":"1.0.0","x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`,
		"unknown":      `{"name":"bad","version":"1.0.0","x":1}`,
		"wrong type":   `{"name":"bad","version":"1.0.0","annotations":{"a":["b"]}}`,
		"yaml merge":   `{"name":"bad","version":"1.0.0","<<":{"removed":true}}`,
		"deep objects": `{"name":"bad","version":"1.0.0","x":` + strings.Repeat(`{"a":`, 9990) + "1" + strings.Repeat("}", 9990) + `}`,
		"DEL":          `{"name":"bad","version":"1.0.0","description":"\u007f"}`,
		"C1 control":   `{"name":"bad","version":"1.0.0","maintainers":[{"name":"\u0090"}]}`,
		"noncharacter": `{"name":"bad","version":"1.0.0","annotations":{"\uffff":"x"}}`,
		"long key":     `{"name":"bad","version":"1.0.0","annotations":{"` + strings.Repeat("k", 1025) + `":"x"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			m := newMemStore()
			good, _ := m.addChart(t, "https://charts.example.com/stable", "good", "1.0.0", []byte(`{"name":"good","version":"1.0.0"}`), []byte("tgz-good"))
			bad, _ := m.addChart(t, "https://charts.example.com/stable", "bad", "1.0.0", []byte(cfg), []byte("tgz-bad"))
			m.addRevision(strings.Repeat("a", 40), time.Unix(1e9, 0), good, bad)
			rec := get(t, New(m, "/helm/", nil), http.MethodGet, "/helm/charts.example.com/stable/index.yaml")
			if rec.Code != http.StatusOK {
				t.Fatalf("index: %d %.200s", rec.Code, rec.Body.String())
			}
			if body := rec.Body.String(); !strings.Contains(body, "good-1.0.0.tgz") || strings.Contains(body, "bad-1.0.0.tgz") || len(body) > 4096 {
				t.Errorf("index (%d bytes): %.300s", len(body), body)
			}
		})
	}
}
