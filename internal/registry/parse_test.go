package registry

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSplitRepoPath(t *testing.T) {
	tests := []struct {
		path, name, route string
		ok                bool
	}{
		{"/v2/library/nginx/manifests/1.27", "library/nginx", "manifests/1.27", true},
		{"/v2/nginx/manifests/sha256:abc", "nginx", "manifests/sha256:abc", true},
		{"/v2/a/b/c/blobs/sha256:abc", "a/b/c", "blobs/sha256:abc", true},
		{"/v2/a/blobs/uploads/", "a", "blobs/uploads/", true},
		{"/v2/a/blobs/uploads", "a", "blobs/uploads", true},
		{"/v2/a/blobs/uploads/0b5f-uuid", "a", "blobs/uploads/0b5f-uuid", true},
		{"/v2/x/blobs/blobs/uploads/", "x/blobs", "blobs/uploads/", true},
		{"/v2/x/blobs/uploads/blobs/sha256:abc", "x/blobs/uploads", "blobs/sha256:abc", true},
		{"/v2/a/manifests/manifests/1", "a/manifests", "manifests/1", true},
		{"/v2/a/tags/list", "a", "tags/list", true},
		{"/v2/a/referrers/sha256:abc", "a", "referrers/sha256:abc", true},
		{"/v2/", "", "", false},
		{"/v2/_catalog", "", "", false},
		{"/v2/manifests/1", "", "", false},
		{"/v2/a/manifests/", "", "", false},
		{"/v2//a/manifests/1", "", "", false},
		{"/v2/a/unknown/1", "", "", false},
		{"/v1/a/manifests/1", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		name, route, ok := splitRepoPath(tc.path)
		if name != tc.name || route != tc.route || ok != tc.ok {
			t.Errorf("splitRepoPath(%q) = %q, %q, %v; want %q, %q, %v", tc.path, name, route, ok, tc.name, tc.route, tc.ok)
		}
	}
}

func TestNSPrefix(t *testing.T) {
	tests := []struct {
		ns, want string
		wantErr  bool
	}{
		{"docker.io", "docker.io", false},
		{"index.docker.io", "docker.io", false},
		{"registry-1.docker.io", "docker.io", false},
		{"ghcr.io", "ghcr.io", false},
		{"127.0.0.1:5000", "127.0.0.1_5000", false},
		{"Registry.Example.com:443", "registry.example.com_443", false},
		{"localhost", "localhost", false},
		{"", "", true},
		{"a/b", "", true},
		{"a b", "", true},
		{"user@host", "", true},
		{"-bad.io", "", true},
		{"bad..io", "", true},
		{"[::1]:5000", "", true},
		{strings.Repeat("a", 256), "", true},
	}
	for _, tc := range tests {
		got, err := nsPrefix(tc.ns)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("nsPrefix(%q) = %q, %v; want %q, error %v", tc.ns, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	tests := []struct {
		in      string
		want    Credentials
		wantErr string
	}{
		{"ballast:abc\n", Credentials{"ballast", "abc"}, ""},
		{"ballast:abc", Credentials{"ballast", "abc"}, ""},
		{"ballast:abc\r\n", Credentials{"ballast", "abc"}, ""},
		{"u:pa:ss", Credentials{"u", "pa:ss"}, ""},
		{"", Credentials{}, "empty"},
		{"\n", Credentials{}, "empty"},
		{"ballast", Credentials{}, "no ':'"},
		{":pw", Credentials{}, "empty user"},
		{"u:", Credentials{}, "empty password"},
		{"u:p\nv:q\n", Credentials{}, "more than one line"},
		{"u:p\n\n", Credentials{}, "more than one line"},
		{"u: p", Credentials{}, "white space"},
		{"u:p\t", Credentials{}, "white space"},
		{"u:p\x00", Credentials{}, "control"},
		{"u:\xff\xfe", Credentials{}, "invalid UTF-8"},
		{"u:" + strings.Repeat("p", 5000), Credentials{}, "one short line"},
	}
	for _, tc := range tests {
		got, err := ParseCredentials([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseCredentials(%q) error %v, want it to mention %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCredentials(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{"ballast:abc\n", "u:p:q", ":", "a:b\r\n", "\xff:\x00", "a:b\nc:d"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err != nil {
			return
		}
		if c.Username == "" || c.Password == "" || strings.Contains(c.Username, ":") {
			t.Fatalf("accepted %q as %+v", b, c)
		}
		// What it accepts round-trips through the file format.
		again, err := ParseCredentials([]byte(c.Username + ":" + c.Password + "\n"))
		if err != nil || again != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
		if !c.matches(c.Username, c.Password) || c.matches(c.Username, c.Password+"x") {
			t.Fatal("matches disagrees with equality")
		}
	})
}

func FuzzSplitRepoPath(f *testing.F) {
	for _, s := range []string{"/v2/a/manifests/1", "/v2/a/blobs/uploads/", "/v2/x/blobs/blobs/sha256:1", "/v2/_catalog"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, route, ok := splitRepoPath(p)
		if !ok {
			return
		}
		if "/v2/"+name+"/"+route != p {
			t.Fatalf("%q split into %q + %q", p, name, route)
		}
		if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "//") {
			t.Fatalf("%q: bad name %q", p, name)
		}
	})
}

// FuzzNSRouter sends arbitrary paths and ns values through the router: it
// never panics, and what reaches Distribution is /v2/<valid prefix>/<name>/…
// or the request unchanged.
func FuzzNSRouter(f *testing.F) {
	f.Add("/v2/library/x/manifests/1", "docker.io")
	f.Add("/v2/a/blobs/uploads/", "127.0.0.1:5000")
	f.Add("/v2/_catalog", "x")
	f.Add("/v2/a/tags/list", "a/b")
	f.Fuzz(func(t *testing.T, p, ns string) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		u := &url.URL{Path: p, RawQuery: url.Values{"ns": {ns}}.Encode()}
		req := httptest.NewRequest("GET", "http://edge.invalid/", nil)
		req.URL = u
		var got string
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.URL.Path
			w.Header().Set("Location", r.URL.Path+"?x=1")
			w.WriteHeader(202)
		})
		rec := httptest.NewRecorder()
		nsRouter{next: next}.ServeHTTP(rec, req)
		if got == "" {
			if rec.Code != 400 {
				t.Fatalf("%q ns=%q: neither routed nor refused (%d)", p, ns, rec.Code)
			}
			return
		}
		name, _, ok := splitRepoPath(p)
		if !ok {
			if got != p {
				t.Fatalf("non-repository path %q changed to %q", p, got)
			}
			return
		}
		prefix, err := nsPrefix(ns)
		if err != nil || got != strings.Replace(p, "/v2/", "/v2/"+prefix+"/", 1) {
			t.Fatalf("%q ns=%q routed to %q (prefix %q, %v)", p, ns, got, prefix, err)
		}
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil || !strings.HasPrefix(loc.Path, "/v2/"+name+"/") || loc.Query().Get("ns") != ns {
			t.Fatalf("Location %q not mapped back for name %q (%v)", rec.Header().Get("Location"), name, err)
		}
	})
}
