package helmrepo

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in, repo, file string // repo "" = refused
	}{
		{"charts.example.com/stable/index.yaml", "charts.example.com/stable", "index.yaml"},
		{"Charts.Example.com/Stable/index.yaml", "charts.example.com/Stable", "index.yaml"},
		{"127.0.0.1:8879/index.yaml", "127.0.0.1:8879", "index.yaml"},
		{"127.0.0.1%3A8879/cert-manager-1.15.0.tgz", "127.0.0.1:8879", "cert-manager-1.15.0.tgz"},
		{"h/a/b/web-0.1.0+g1.tgz", "h/a/b", "web-0.1.0+g1.tgz"},
		{"h/web-0.1.0%2Bg1.tgz", "h", "web-0.1.0+g1.tgz"},
		{"", "", ""},
		{"index.yaml", "", ""},
		{"h//index.yaml", "", ""},
		{"h/../index.yaml", "", ""},
		{"h/%2e%2e/index.yaml", "", ""},
		{"h/./index.yaml", "", ""},
		{"h%2Fstable/index.yaml", "", ""},
		{"h%2fstable/index.yaml", "", ""},
		{"h/stable%5Cindex.yaml", "", ""},
		{`h\stable/index.yaml`, "", ""},
		{"h/Chart.yaml", "", ""},
		{"h/.tgz", "", ""},
		{"h/", "", ""},
		{"h/index.yaml/", "", ""},
		{"h/%zz.tgz", "", ""},
		{"h/a%00.tgz", "", ""},
		{"h/a%20b.tgz", "", ""},
		{"h/a%ff.tgz", "", ""},
		{strings.Repeat("a/", 1100) + "index.yaml", "", ""},
	} {
		repo, file, err := ParsePath(tc.in)
		if tc.repo == "" {
			if err == nil || !errors.Is(err, ErrBadPath) {
				t.Errorf("ParsePath(%q) = %q, %q, %v; want an ErrBadPath", tc.in, repo, file, err)
			}
			continue
		}
		if err != nil || repo != tc.repo || file != tc.file {
			t.Errorf("ParsePath(%q) = %q, %q, %v; want %q, %q", tc.in, repo, file, err, tc.repo, tc.file)
		}
	}
}

func TestRepoKeyMatchesParsePath(t *testing.T) {
	for _, hrp := range []string{"Charts.Example.com/Stable", "127.0.0.1:8879", "h"} {
		repo, _, err := ParsePath(hrp + "/index.yaml")
		if err != nil || repo != RepoKey(hrp) {
			t.Errorf("%s: ParsePath gives %q (%v), RepoKey %q", hrp, repo, err, RepoKey(hrp))
		}
	}
}

// FuzzParsePath: any request path either is refused with ErrBadPath or
// names a repository and a file without dot segments, empty segments or
// slashes in the file.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"charts.example.com/stable/index.yaml", "h/web-0.1.0%2Bg1.tgz", "h/%2e%2e/x.tgz", "h%2Fx/index.yaml", "a/b/c/d.tgz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		repo, file, err := ParsePath(in)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("error %v does not wrap ErrBadPath", err)
			}
			return
		}
		if strings.ContainsAny(file, "/\\") || (file != IndexFile && !strings.HasSuffix(file, ".tgz")) {
			t.Fatalf("file %q", file)
		}
		for _, seg := range strings.Split(repo, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.Contains(seg, "\\") {
				t.Fatalf("repo %q has segment %q", repo, seg)
			}
		}
	})
}

func TestMetadata(t *testing.T) {
	for _, tc := range []struct {
		in  string
		bad string // "" = accepted
	}{
		{`{"name":"a","version":"1.0.0","apiVersion":"v2","annotations":{"x":"y"},"dependencies":[{"name":"b","version":"1"}]}`, ""},
		{`{"name":"a","version":"1.0.0","kubeVersion":">=1.20"}`, ""},
		// Helm loads index.yaml strictly: one unknown field fails it all.
		{`{"name":"a","version":"1.0.0","weight":3}`, `unknown field "weight"`},
		{`{"name":"a","version":"1","<<":{"removed":true}}`, "unknown field"},
		{`{"name":"a"}`, `"version" missing`},
		{`{"name":1,"version":"1"}`, `"name" missing or not a string`},
		{`{"name":"a","version":"1","urls":["x"]}`, `field "urls"`},
		{`{"name":"a","version":"1","digest":"x"}`, `field "digest"`},
		{`{"name":"a","version":"1"} {}`, "trailing data"},
		{`null`, "null"},
		{`[1]`, "not a JSON object"},
		{`{"name":"a","version":"1"`, "not a JSON object"},
		{`{"name":"a","version":"1","description":"` + strings.Repeat("x", MaxConfigSize) + `"}`, "exceeds"},
		// One entry Helm cannot read makes the whole index.yaml unreadable.
		{`{"name":"a","version":"1","annotations":{"x":["y"]}}`, "not what Helm reads"},
		{`{"name":"a","version":"1","apiVersion":{"a":1}}`, "not what Helm reads"},
		{`{"name":"a","version":"1","KEYWORDS":5}`, "not what Helm reads"},
		{`{"name":"a","version":"1","maintainers":[{"name":1}]}`, "not what Helm reads"},
		{`{"name":"a","version":"1","deprecated":"yes"}`, "not what Helm reads"},
		{`{"name":"a","version":"1","dependencies":[{"name":"b","import-values":["x",{"child":"c","parent":"d"}]}],"maintainers":[{"name":"m","email":"e"}],"deprecated":true,"keywords":null}`, ""},
		// YAML indents each level further: 60 KiB of nesting was 100 MB of
		// index, 10000 levels failed every repository's index.
		{`{"name":"a","version":"1","x":` + strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33) + `}`, "nested deeper"},
		{`{"name":"a","version":"1","x":` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `}`, "nested deeper"},
		{`{"name":"a","version":"1","dependencies":[{"name":"b","import-values":` + strings.Repeat(`[`, 28) + strings.Repeat(`]`, 28) + `}]}`, ""},
		{`{"name":"a","version":"1","dependencies":[{"name":"b","import-values":` + strings.Repeat(`[`, 30) + strings.Repeat(`]`, 30) + `}]}`, "nested deeper"},
		// Strings YAML cannot carry: the writer fails (and with it every
		// chart's index), the key is too long for YAML, or the value reads
		// back changed.
		{`{"name":"a","version":"1","description":"a\u007fb"}`, "index.yaml cannot carry"},
		{"{\"name\":\"a\",\"version\":\"1\",\"description\":\"a\x7fb\"}", "index.yaml cannot carry"},
		{`{"name":"a","version":"1","description":"a\u0080b"}`, "index.yaml cannot carry"},
		{`{"name":"a","version":"1","description":"a\u009fb"}`, "index.yaml cannot carry"},
		{`{"name":"a","version":"1","description":"a\ufffeb"}`, "index.yaml cannot carry"},
		{`{"name":"a","version":"1","description":"a\uffffb"}`, "index.yaml cannot carry"},
		{`{"name":"a\u007f","version":"1"}`, "index.yaml cannot carry"},
		{`{"name":"a","version":"1","annotations":{"k\u0085k":"x"}}`, "index.yaml cannot carry"},
		{`{"name":"a","version":"1","description":"a\u0085b"}`, "index.yaml cannot carry"},
		{`{"name":"a","version":"1","annotations":{"` + strings.Repeat("k", 1100) + `":"x"}}`, "index.yaml cannot carry"},
		// The entries are keyed by the chart name: as long a name is no key.
		{`{"name":"` + strings.Repeat("n", 1100) + `","version":"1"}`, "index.yaml cannot carry"},
		{`{"name":"` + strings.Repeat("n", 1000) + `","version":"1"}`, ""},
		{`{"name":"a","version":"1","keywords":["\u2028"],"annotations":{"a\u2029b":"\u2028"}}`, ""},
		// What YAML escapes comes back whole.
		{`{"name":"a","version":"1","description":"a\u0000\u001b\t\ufeff\ud83d\ude00\ue000\ufffd\u00a0b","annotations":{"` + strings.Repeat("k", 1000) + `":"\u0000"}}`, ""},
	} {
		_, err := Metadata([]byte(tc.in))
		if tc.bad == "" && err != nil {
			t.Errorf("Metadata(%.60s): %v", tc.in, err)
		}
		if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("Metadata(%.60s): %v, want an error containing %q", tc.in, err, tc.bad)
		}
	}
}

// FuzzMetadata: a config blob is accepted only with string name and
// version, never panics, and what it accepts renders into an index.yaml
// that reads back (as Helm reads it) with the config's values.
func FuzzMetadata(f *testing.F) {
	f.Add([]byte(`{"name":"a","version":"1.0.0","apiVersion":"v2"}`))
	f.Add([]byte(`{"name":"a","version":"1","urls":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"name":"a","version":"1","description":"\u007f\u0085\u2028\ufeff","annotations":{"k\u0000":"\u0080"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Metadata(raw)
		if err != nil {
			return
		}
		if n, _ := m["name"].(string); n == "" {
			t.Fatalf("accepted without a name: %s", raw)
		}
		name := m["name"].(string) // the bundle's chart name, which the config must repeat
		idx, err := render([]version{{repo: "h", name: name, version: "1", meta: m}})
		if err != nil {
			t.Fatalf("accepted metadata does not render: %v", err)
		}
		// Helm reads the index with sigs.k8s.io/yaml: it must see the
		// chart's metadata as the config blob gave it.
		var doc struct {
			Entries map[string][]map[string]any `json:"entries"`
		}
		if err := yaml.Unmarshal(idx.repos["h"].yaml, &doc); err != nil {
			t.Fatalf("rendered index does not read back: %v", err)
		}
		var want map[string]any
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("accepted metadata is not JSON: %v", err)
		}
		if len(doc.Entries[name]) != 1 {
			t.Fatalf("rendered index has %d entries under %q", len(doc.Entries[name]), name)
		}
		got := doc.Entries[name][0]
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Fatalf("field %q reads back as %#v, the config gave %#v", k, got[k], v)
			}
		}
	})
}
