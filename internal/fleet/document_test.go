package fleet

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	revA = strings.Repeat("a", 40)
	revB = strings.Repeat("b", 40)
)

func sample() Document {
	return Document{Schema: SchemaVersion, Site: "ship-17", Version: "v0.9.0", Repos: []Repo{{
		ID: "github.com/fleet/apps", Deployed: revA, Ready: []string{revA},
		Tracked: []TrackedRef{{Name: "refs/heads/main", Ready: revA}},
		Pending: []Pending{{Revision: revB, State: "syncing", Percent: 45, ETAMinutes: 12, CompleteBy: "2026-12-04T03:15:00Z"}},
		Errors:  []string{"mirror: dial tcp: i/o timeout"},
	}}, Budget: &Budget{UsedBytes: 10 << 20, LimitBytes: 1 << 30, Period: "2026-12"}}
}

func TestEncodeParseRoundTrip(t *testing.T) {
	b, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Encode(d)
	if !bytes.Equal(b, again) {
		t.Fatalf("round trip changed the document:\n%s\n%s", b, again)
	}
	if Hash(b) != Hash(again) {
		t.Fatal("hash not stable")
	}
}

func TestParseRefuses(t *testing.T) {
	mutate := func(f func(m map[string]any)) string {
		b, _ := Encode(sample())
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f(m)
		out, _ := json.Marshal(m)
		return string(out)
	}
	repo := func(m map[string]any) map[string]any { return m["repos"].([]any)[0].(map[string]any) }
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not JSON", "{", "status document"},
		{"trailing data", mutate(func(map[string]any) {}) + "{}", "trailing data"},
		{"unknown field", mutate(func(m map[string]any) { m["ready"] = true }), `unknown field "ready"`},
		{"other schema", mutate(func(m map[string]any) { m["schema"] = 2 }), "schema 2"},
		{"bad site", mutate(func(m map[string]any) { m["site"] = "Ship 17" }), "site:"},
		{"no repo id", mutate(func(m map[string]any) { repo(m)["id"] = "" }), "repos[0].id: empty"},
		{"bad ready", mutate(func(m map[string]any) { repo(m)["ready"] = []string{"main"} }), `repos[0].ready[0]: "main" is not a revision`},
		{"bad deployed", mutate(func(m map[string]any) { repo(m)["deployed"] = "x" }), "repos[0].deployed"},
		{"bad percent", mutate(func(m map[string]any) {
			repo(m)["pending"] = []map[string]any{{"revision": revB, "state": "syncing", "percent": 101}}
		}), "percent: 101"},
		{"bad completeBy", mutate(func(m map[string]any) {
			repo(m)["pending"] = []map[string]any{{"revision": revB, "state": "waiting", "percent": 0, "completeBy": "tomorrow"}}
		}), `pending[0].completeBy: "tomorrow" is not an RFC 3339 time`},
		{"bad sizeKnownAt", mutate(func(m map[string]any) {
			repo(m)["pending"] = []map[string]any{{"revision": revB, "state": "waiting", "percent": 0, "sizeKnownAt": "2026-13-01T00:00:00Z"}}
		}), `pending[0].sizeKnownAt`},
		{"control char", mutate(func(m map[string]any) { repo(m)["errors"] = []string{"a\x1b[31mred"} }), "control character"},
		{"C1 control", mutate(func(m map[string]any) { repo(m)["errors"] = []string{"a\u009bred"} }), "control character U+009B"},
		{"bidi override", mutate(func(m map[string]any) { repo(m)["errors"] = []string{"ok \u202eydaer"} }), "control character U+202E"},
		{"bidi isolate", mutate(func(m map[string]any) { repo(m)["id"] = "a\u2067b" }), "control character U+2067"},
		{"zero width", mutate(func(m map[string]any) { m["version"] = "v1\u200b" }), "control character U+200B"},
		{"line separator", mutate(func(m map[string]any) { repo(m)["errors"] = []string{"a\u2028b"} }), "control character U+2028"},
		{"negative budget", mutate(func(m map[string]any) { m["budget"] = map[string]any{"usedBytes": -1} }), "budget: negative"},
		{"too many repos", mutate(func(m map[string]any) {
			var rs []any
			for range MaxRepos + 1 {
				rs = append(rs, map[string]any{"id": "x", "ready": []string{}})
			}
			m["repos"] = rs
		}), "more than 64"},
		{"too big", `{"version":"` + strings.Repeat("x", MaxDocumentSize) + `"}`, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestFitKeepsNewestAndClips(t *testing.T) {
	d := sample()
	for i := range MaxRevisions + 5 {
		_ = i
		d.Repos[0].Ready = append(d.Repos[0].Ready, revB)
	}
	d.Repos[0].Errors = []string{strings.Repeat("é", MaxErrorLen), "line\nbreak"}
	d.Version = strings.Repeat("v", 100)
	d.Repos[0].ID = strings.Repeat("h", 300)
	d.Repos[0].Tracked[0].Name = "refs/heads/" + strings.Repeat("b", 300)
	f := Fit(d)
	if _, err := Encode(f); err != nil {
		t.Fatalf("Fit result does not encode: %v", err)
	}
	if got := len(f.Repos[0].Ready); got != MaxRevisions || f.Repos[0].Ready[0] != revA {
		t.Fatalf("ready: %d entries, first %s", got, f.Repos[0].Ready[0])
	}
	if len(d.Repos[0].Ready) != MaxRevisions+6 {
		t.Fatal("Fit changed its argument")
	}
}

func TestParseManifest(t *testing.T) {
	pub := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	layer := v1.Descriptor{Size: 120, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}}
	raw, err := Manifest(layer, pub, pub.Add(-time.Hour), pub.Add(-90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Published.Equal(pub) || !m.Changed.Equal(pub.Add(-time.Hour)) || !m.Link.Equal(pub.Add(-2*time.Minute)) || m.Size != 120 {
		t.Fatalf("parsed %+v", m)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"artifact type", ArtifactType, "application/json", "artifactType"},
		{"published", AnnotationPublished + `":"2026`, AnnotationPublished + `":"yesterday`, AnnotationPublished},
		{"digest", "sha256:" + strings.Repeat("c", 64), "sha256:zz", "layer digest"},
		{"size", `"size":120`, `"size":99999999`, "document of 99999999 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(raw), tc.from, tc.to, 1)
			if bad == string(raw) {
				t.Fatalf("test did not change the manifest (%q)", tc.from)
			}
			if _, err := ParseManifest([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseManifest: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSiteNames(t *testing.T) {
	for s, ok := range map[string]bool{"ship-17": true, "port.a": true, "a": true, "": false, "Ship": false,
		"-a": false, "a/b": false, "a:b": false, strings.Repeat("a", 64): false} {
		if got := ValidSiteName(s) == nil; got != ok {
			t.Errorf("ValidSiteName(%q) = %v, want %v", s, got, ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := Encode(sample())
	f.Add(b)
	f.Add([]byte(`{"schema":1,"site":"a","version":"","repos":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses encodes again, and the result parses the same.
		out, err := Encode(d)
		if err != nil {
			t.Fatalf("parsed but does not encode: %v", err)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded does not parse: %v", err)
		}
		if out2, _ := Encode(d2); !bytes.Equal(out, out2) {
			t.Fatal("not stable")
		}
		var html bytes.Buffer
		f := &Fleet{Sites: []SiteView{{Site: d.Site, State: StateCurrent, Document: &d}}}
		if err := f.WriteHTML(&html); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(html.Bytes(), []byte("<script")) {
			t.Fatal("a document put a script into the page")
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	raw, _ := Manifest(v1.Descriptor{Size: 1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}},
		time.Unix(0, 0), time.Unix(0, 0), time.Time{})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if m.Size <= 0 || m.Size > MaxDocumentSize || !strings.HasPrefix(m.Layer, "sha256:") {
			t.Fatalf("accepted %+v", m)
		}
	})
}

// FuzzFit: whatever text a site's parts produce (error messages, ids,
// versions), Fit makes a document that encodes, so publishing never stops
// on it. Revisions and the site name come from validated config and sync.
func FuzzFit(f *testing.F) {
	f.Add("v1", "github.com/fleet/apps", "refs/heads/main", "dial tcp: timeout", "2026-12")
	f.Fuzz(func(t *testing.T, version, id, ref, errText, period string) {
		if id == "" {
			id = "x"
		}
		if ref == "" {
			ref = "refs/heads/main"
		}
		d := sample()
		d.Version, d.Repos[0].ID, d.Repos[0].Tracked[0].Name = version, id, ref
		d.Repos[0].Errors = []string{errText, errText}
		d.Errors = []string{errText}
		d.Budget.Period = period
		if _, err := Encode(Fit(d)); err != nil {
			t.Fatalf("Fit result does not encode: %v", err)
		}
	})
}

// What a site publishes about itself passes through ClipError: controls of
// every kind become spaces, so the document still encodes.
func TestClipErrorBlanksControls(t *testing.T) {
	got := ClipError("a\x1bb\u009bc\u202ed\u2066e\u200bf\u2029g")
	if want := "a b c d e f g"; got != want {
		t.Fatalf("ClipError = %q, want %q", got, want)
	}
}
