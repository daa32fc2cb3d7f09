package charts_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
)

func demo(version, image string) helmrepo.Chart {
	return helmrepo.Chart{Name: "demo", Version: version, Image: image}
}

func sha(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestFetchHTTPResolvesVersions(t *testing.T) {
	srv := helmrepo.Serve(t,
		demo("1.2.0", "example.com/demo:1.2.0"),
		demo("1.2.5", "example.com/demo:1.2.5"),
		demo("1.3.0", "example.com/demo:1.3.0"),
		demo("2.0.0-rc.1", "example.com/demo:2.0.0-rc.1"),
		helmrepo.Chart{Name: "other", Version: "0.1.0", Image: "example.com/other:0.1.0"},
	)
	for _, tt := range []struct {
		rev, want string
	}{
		{"1.2.0", "1.2.0"},    // exact
		{"1.2.x", "1.2.5"},    // the newest in the range, not 1.3.0
		{"~1.2", "1.2.5"},     // tilde
		{">=1.2 <2", "1.3.0"}, // a range that excludes the prerelease
		{"*", "1.3.0"},        // any stable version
		{"", "1.3.0"},         // empty: latest stable, as Helm
		{"2.0.0-rc.1", "2.0.0-rc.1"},
	} {
		t.Run(tt.rev, func(t *testing.T) {
			f := &charts.Fetcher{}
			chrt, res, err := f.Fetch(context.Background(), charts.Ref{RepoURL: srv.URL, Chart: "demo", TargetRevision: tt.rev})
			if err != nil {
				t.Fatal(err)
			}
			if res.Version != tt.want || chrt.Metadata.Version != tt.want {
				t.Fatalf("resolved %s (chart %s), want %s", res.Version, chrt.Metadata.Version, tt.want)
			}
			file := filepath.Join(srv.Dir, "demo-"+tt.want+".tgz")
			if want := sha(t, file); res.Digest != want {
				t.Errorf("digest %s, want %s (sha256 of %s)", res.Digest, want, file)
			}
			if res.URL != srv.URL+"/demo-"+tt.want+".tgz" || res.Cached {
				t.Errorf("url %q cached %v", res.URL, res.Cached)
			}
			if got := f.Resolved(); len(got) != 1 || got[0] != res {
				t.Errorf("Resolved() = %+v", got)
			}
		})
	}
}

// tgz builds a gzipped tar from entries in order.
type entry struct {
	name, body, link string
	typ              byte
}

func tgz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var chartYAML = entry{name: "demo/Chart.yaml", body: "apiVersion: v2\nname: demo\nversion: 9.9.9\n"}

// addArchive puts a hand-made archive into the repository as demo 9.9.9.
func addArchive(t *testing.T, srv *helmrepo.Server, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(srv.Dir, "demo-9.9.9.tgz"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	idx, err := repo.LoadIndexFile(filepath.Join(srv.Dir, "index.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	idx.Entries["demo"] = append(idx.Entries["demo"], &repo.ChartVersion{
		Metadata: &helmMeta, URLs: []string{"demo-9.9.9.tgz"}, Digest: hex.EncodeToString(sum[:]),
	})
	idx.SortEntries()
	if err := idx.WriteFile(filepath.Join(srv.Dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFetchHTTPBadInput(t *testing.T) {
	for _, tt := range []struct {
		name    string
		setup   func(t *testing.T, srv *helmrepo.Server)
		ref     charts.Ref // RepoURL filled in unless set
		limit   int64
		wantErr []string // every one must be in the message
	}{
		{name: "unknown chart", ref: charts.Ref{Chart: "nope", TargetRevision: "1.0.0"},
			wantErr: []string{`no chart "nope"`, "/index.yaml"}},
		{name: "unknown version", ref: charts.Ref{Chart: "demo", TargetRevision: "7.7.7"},
			wantErr: []string{"no version", "7.7.7", "/index.yaml"}},
		{name: "unresolvable range", ref: charts.Ref{Chart: "demo", TargetRevision: "~3.1"},
			wantErr: []string{"no version", "~3.1"}},
		{name: "not a range", ref: charts.Ref{Chart: "demo", TargetRevision: "latest please"},
			wantErr: []string{"no version", "latest please"}},
		{name: "malformed index", setup: func(t *testing.T, srv *helmrepo.Server) {
			write(t, filepath.Join(srv.Dir, "index.yaml"), "apiVersion: v1\nentries: [this is: not a map\n")
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "1.0.0"}, wantErr: []string{"/index.yaml", "malformed index"}},
		{name: "index without apiVersion", setup: func(t *testing.T, srv *helmrepo.Server) {
			write(t, filepath.Join(srv.Dir, "index.yaml"), "entries: {}\n")
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "1.0.0"}, wantErr: []string{"/index.yaml", "malformed index"}},
		{name: "index with an unknown field", setup: func(t *testing.T, srv *helmrepo.Server) {
			write(t, filepath.Join(srv.Dir, "index.yaml"), "apiVersion: v1\nentries: {}\nsurprise: 1\n")
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "1.0.0"}, wantErr: []string{"/index.yaml", "malformed index"}},
		{name: "no index", setup: func(t *testing.T, srv *helmrepo.Server) {
			os.Remove(filepath.Join(srv.Dir, "index.yaml"))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "1.0.0"}, wantErr: []string{"/index.yaml", "404"}},
		{name: "digest mismatch", setup: func(t *testing.T, srv *helmrepo.Server) {
			p := filepath.Join(srv.Dir, "demo-1.0.0.tgz")
			data, _ := os.ReadFile(p)
			data = append(data, 0) // the index still has the old digest
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "1.0.0"}, wantErr: []string{"demo-1.0.0.tgz", "index.yaml says sha256:"}},
		{name: "chart over the limit", ref: charts.Ref{Chart: "demo", TargetRevision: "1.0.0"}, limit: 100,
			wantErr: []string{"demo-1.0.0.tgz", "larger than the limit of 100 bytes"}},
		{name: "archive with ..", setup: func(t *testing.T, srv *helmrepo.Server) {
			addArchive(t, srv, tgz(t, chartYAML, entry{name: "demo/../../etc/evil", body: "x"}))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "9.9.9"}, wantErr: []string{"demo-9.9.9.tgz", "leaves the chart"}},
		{name: "archive with a symlink", setup: func(t *testing.T, srv *helmrepo.Server) {
			addArchive(t, srv, tgz(t, chartYAML, entry{name: "demo/values.yaml", typ: tar.TypeSymlink, link: "/etc/passwd"}))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "9.9.9"}, wantErr: []string{"demo-9.9.9.tgz", "links are refused"}},
		{name: "archive with a hard link", setup: func(t *testing.T, srv *helmrepo.Server) {
			addArchive(t, srv, tgz(t, chartYAML, entry{name: "demo/values.yaml", typ: tar.TypeLink, link: "demo/Chart.yaml"}))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "9.9.9"}, wantErr: []string{"demo-9.9.9.tgz", "links are refused"}},
		{name: "archive with an absolute path", setup: func(t *testing.T, srv *helmrepo.Server) {
			addArchive(t, srv, tgz(t, chartYAML, entry{name: "/demo/x.yaml", body: "a: 1"}))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "9.9.9"}, wantErr: []string{"demo-9.9.9.tgz", "absolute"}},
		{name: "archive that is not gzip", setup: func(t *testing.T, srv *helmrepo.Server) {
			addArchive(t, srv, []byte("PK\x03\x04 a zip file"))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "9.9.9"}, wantErr: []string{"demo-9.9.9.tgz", "not gzip"}},
		{name: "archive holding another chart", setup: func(t *testing.T, srv *helmrepo.Server) {
			addArchive(t, srv, tgz(t, entry{name: "demo/Chart.yaml", body: "apiVersion: v2\nname: demo\nversion: 1.0.0\n"}))
		}, ref: charts.Ref{Chart: "demo", TargetRevision: "9.9.9"}, wantErr: []string{"demo-9.9.9.tgz", "holds chart demo 1.0.0"}},
		{name: "chart name with a slash", ref: charts.Ref{Chart: "../demo", TargetRevision: "1.0.0"},
			wantErr: []string{"not a plain name"}},
		{name: "credentials in the URL", ref: charts.Ref{RepoURL: "http://user:pw@127.0.0.1:1", Chart: "demo", TargetRevision: "1.0.0"},
			wantErr: []string{"credentials"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := helmrepo.Serve(t, demo("1.0.0", "example.com/demo:1.0.0"))
			if tt.setup != nil {
				tt.setup(t, srv)
			}
			ref := tt.ref
			if ref.RepoURL == "" {
				ref.RepoURL = srv.URL
			}
			cache := t.TempDir()
			f := &charts.Fetcher{MaxChartBytes: tt.limit, CacheDir: cache}
			chrt, _, err := f.Fetch(context.Background(), ref)
			if err == nil {
				t.Fatalf("fetched chart %s %s, want an error", chrt.Name(), chrt.Metadata.Version)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if errors.Is(err, charts.ErrUnavailable) {
				t.Errorf("bad input classed as unavailable: %v", err)
			}
			if len(f.Resolved()) != 0 {
				t.Errorf("Resolved() = %+v after a failure", f.Resolved())
			}
			// Nothing partial: no archive lands in the cache.
			archives, _ := filepath.Glob(filepath.Join(cache, "*", "*.tgz"))
			if len(archives) != 0 {
				t.Errorf("cache holds %v after a failure", archives)
			}
		})
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFetchHTTPUnavailable(t *testing.T) {
	srv := helmrepo.Serve(t, demo("1.0.0", "example.com/demo:1.0.0"))
	srv.SetDown(true)
	_, _, err := (&charts.Fetcher{}).Fetch(context.Background(), charts.Ref{RepoURL: srv.URL, Chart: "demo", TargetRevision: "1.0.0"})
	if !errors.Is(err, charts.ErrUnavailable) || !strings.Contains(err.Error(), srv.URL+"/index.yaml") {
		t.Fatalf("503: err %v, want ErrUnavailable naming the index URL", err)
	}
	srv.Close()
	_, _, err = (&charts.Fetcher{}).Fetch(context.Background(), charts.Ref{RepoURL: srv.URL, Chart: "demo", TargetRevision: "1.0.0"})
	if !errors.Is(err, charts.ErrUnavailable) {
		t.Fatalf("connection refused: err %v, want ErrUnavailable", err)
	}
}

// A chart fetched once is rendered again with the repository gone: an exact
// version straight from the cache, a range against the cached index.
func TestFetchHTTPOfflineFromCache(t *testing.T) {
	srv := helmrepo.Serve(t, demo("1.2.0", "example.com/demo:1.2.0"), demo("1.2.5", "example.com/demo:1.2.5"))
	cache := t.TempDir()
	online := &charts.Fetcher{CacheDir: cache}
	_, first, err := online.Fetch(context.Background(), charts.Ref{RepoURL: srv.URL, Chart: "demo", TargetRevision: "1.2.x"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	for _, rev := range []string{"1.2.5", "1.2.x"} {
		f := &charts.Fetcher{CacheDir: cache}
		chrt, res, err := f.Fetch(context.Background(), charts.Ref{RepoURL: srv.URL, Chart: "demo", TargetRevision: rev})
		if err != nil {
			t.Fatalf("%s offline: %v", rev, err)
		}
		if res.Version != "1.2.5" || chrt.Metadata.Version != "1.2.5" || res.Digest != first.Digest || !res.Cached {
			t.Errorf("%s offline: %+v, want 1.2.5 %s from the cache", rev, res, first.Digest)
		}
	}
	// A version never fetched is not invented.
	_, _, err = (&charts.Fetcher{CacheDir: cache}).Fetch(context.Background(), charts.Ref{RepoURL: srv.URL, Chart: "demo", TargetRevision: "1.2.0"})
	if !errors.Is(err, charts.ErrUnavailable) {
		t.Errorf("1.2.0 offline, never fetched: err %v, want ErrUnavailable", err)
	}
}

func TestCheckArchiveAcceptsHelmPackages(t *testing.T) {
	p := helmrepo.Package(t, t.TempDir(), helmrepo.Chart{Name: "demo", Version: "1.0.0", Image: "x",
		Files: map[string]string{"values-edge.yaml": "image: y\n", "templates/_helpers.tpl": ""}})
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	chrt, err := charts.LoadArchive(data, charts.DefaultMaxChartBytes)
	if err != nil {
		t.Fatal(err)
	}
	if chrt.Name() != "demo" {
		t.Errorf("name %q", chrt.Name())
	}
	// The uncompressed limit holds even when the archive itself is small.
	big := tgz(t, chartYAML, entry{name: "demo/big.txt", body: strings.Repeat("a", 1<<20)})
	if len(big) > 64<<10 {
		t.Fatalf("test archive is %d bytes compressed", len(big))
	}
	if _, err := charts.LoadArchive(big, 512<<10); err == nil || !strings.Contains(err.Error(), "uncompressed") {
		t.Errorf("1 MiB uncompressed under a 512 KiB limit: err %v", err)
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: 1.0.0\n    urls: [demo-1.0.0.tgz]\n"))
	f.Add([]byte(`{"apiVersion":"v1","entries":{"a":[{"name":"a","version":"0.1.0"}]}}`))
	f.Add([]byte("apiVersion: v1\nentries: {demo: [null]}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := charts.ParseIndex(data)
		if err != nil {
			if idx != nil {
				t.Fatalf("index and error both returned")
			}
			return
		}
		if idx.APIVersion == "" {
			t.Fatalf("accepted an index without apiVersion")
		}
		for name, versions := range idx.Entries {
			for _, v := range versions {
				if v == nil || v.Metadata == nil {
					t.Fatalf("%s: nil entry kept", name)
				}
			}
			_, _ = idx.Get(name, "*")
		}
	})
}

func FuzzLoadArchive(f *testing.F) {
	f.Add(tgz(f, chartYAML, entry{name: "demo/values.yaml", body: "a: 1\n"}))
	f.Add(tgz(f, chartYAML, entry{name: "demo/../x", body: "x"}))
	f.Add(tgz(f, chartYAML, entry{name: "demo/l", typ: tar.TypeSymlink, link: "/"}))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		chrt, err := charts.LoadArchive(data, 1<<20)
		if err != nil {
			return
		}
		// What is accepted passed the checks: no link, no path out.
		if err := charts.CheckArchive(bytes.NewReader(data), 1<<20); err != nil {
			t.Fatalf("loaded, but CheckArchive says %v", err)
		}
		for _, file := range chrt.Raw {
			if strings.HasPrefix(file.Name, "/") || strings.Contains("/"+file.Name+"/", "/../") {
				t.Fatalf("file %q escapes the chart", file.Name)
			}
		}
	})
}

var helmMeta = chart.Metadata{APIVersion: "v2", Name: "demo", Version: "9.9.9"}

// HTTP basic credentials go to the repository they are for (longest
// prefix, whole path segments), never elsewhere.
func TestFetchRepoAuth(t *testing.T) {
	srv := helmrepo.Serve(t, helmrepo.Chart{Name: "web", Version: "1.0.0", Image: "x"})
	var got []string
	guard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		got = append(got, u+":"+p)
		if !ok || u != "ci" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		r2, _ := http.NewRequest(r.Method, srv.URL+strings.TrimPrefix(r.URL.Path, "/private"), nil)
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(guard.Close)
	ref := charts.Ref{RepoURL: guard.URL + "/private", Chart: "web", TargetRevision: "1.0.0"}
	for _, tt := range []struct {
		name string
		auth []charts.RepoCredential
		ok   bool
	}{
		{"none", nil, false},
		{"other repository", []charts.RepoCredential{{URLPrefix: guard.URL + "/priv", Username: "ci", Password: "s3cret"}}, false},
		{"wrong password", []charts.RepoCredential{{URLPrefix: guard.URL, Username: "ci", Password: "nope"}}, false},
		{"longest prefix wins", []charts.RepoCredential{{URLPrefix: guard.URL, Username: "ci", Password: "nope"},
			{URLPrefix: guard.URL + "/private/", Username: "ci", Password: "s3cret"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &charts.Fetcher{RepoAuth: tt.auth}
			_, _, err := f.Fetch(context.Background(), ref)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "nope")) {
				t.Errorf("error %v: want the 401, never the password", err)
			}
		})
	}
}

// Names and headers count against the uncompressed limit: empty entries
// with long (PAX) names compress to almost nothing and Helm's loader keeps
// every name, so without it a few hundred KiB of archive took 500 MB.
// Errors are clipped in the log here: they name the entry.
func TestArchiveNamesCountAgainstTheLimit(t *testing.T) {
	many := []entry{chartYAML}
	for i := range 400 {
		many = append(many, entry{name: fmt.Sprintf("demo/%s%04d", strings.Repeat(strings.Repeat("a", 99)+"/", 30), i)})
	}
	manyNames := tgz(t, many...)
	if len(manyNames) > 64<<10 {
		t.Fatalf("test archive is %d bytes compressed", len(manyNames))
	}
	longName := tgz(t, chartYAML, entry{name: "demo/" + strings.Repeat("a", 100_000)})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"400 empty files with 3 kB names", manyNames, "uncompressed"},
		{"a 100 kB name", longName, "longer than 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := charts.LoadArchive(tc.data, 1<<20)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadArchive: err %.200v, want %q", err, tc.want)
			}
			if err != nil && len(err.Error()) > 512 {
				t.Errorf("LoadArchive: error of %d bytes", len(err.Error()))
			}
			gz, err := gzip.NewReader(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if err := charts.Extract(gz, t.TempDir(), 1<<20, true); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Extract: err %.200v, want %q", err, tc.want)
			}
		})
	}
}
