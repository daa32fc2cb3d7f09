package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
)

const rev = "0123456789abcdef0123456789abcdef01234567"

func hashOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func mustRef(t testing.TB, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// store is an in-memory Presence and ManifestFetcher.
type store struct {
	manifests map[string][]byte // repo@digest
	blobs     map[string]int64
	tags      map[string]v1.Hash // repo:tag
}

func newStore() *store {
	return &store{manifests: map[string][]byte{}, blobs: map[string]int64{}, tags: map[string]v1.Hash{}}
}

func (s *store) Manifest(_ context.Context, repo string, d v1.Hash) ([]byte, error) {
	if b, ok := s.manifests[repo+"@"+d.String()]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("manifest %s: %w", d, oci.ErrNotFound)
}

func (s *store) BlobSize(_ context.Context, repo string, d v1.Hash) (int64, error) {
	if n, ok := s.blobs[repo+"@"+d.String()]; ok {
		return n, nil
	}
	return 0, oci.ErrNotFound
}

func (s *store) Tag(_ context.Context, repo, tag string) (v1.Hash, error) {
	if h, ok := s.tags[repo+":"+tag]; ok {
		return h, nil
	}
	return v1.Hash{}, oci.ErrNotFound
}

func (s *store) putJSON(t testing.TB, repo string, v any, mt types.MediaType) v1.Descriptor {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: hashOf(raw)}
	s.manifests[repo+"@"+d.Digest.String()] = raw
	return d
}

func (s *store) putBlob(repo, content string) v1.Descriptor {
	d := v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(content)), Digest: hashOf([]byte(content))}
	s.blobs[repo+"@"+d.Digest.String()] = d.Size
	return d
}

// multiArch stores an index of two platform manifests in repo.
func (s *store) multiArch(t testing.TB, repo, seed string) (v1.Descriptor, map[string][]v1.Hash) {
	perPlatform := map[string][]v1.Hash{}
	var children []v1.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := s.putBlob(repo, seed+arch+"config")
		cfg.MediaType = types.OCIConfigJSON
		l := s.putBlob(repo, seed+arch+"layer")
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{l}}
		d := s.putJSON(t, repo, m, types.OCIManifestSchema1)
		d.Platform = &v1.Platform{OS: "linux", Architecture: arch}
		children = append(children, d)
		perPlatform[arch] = []v1.Hash{d.Digest, cfg.Digest, l.Digest}
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children}
	return s.putJSON(t, repo, idx, types.OCIImageIndex), perPlatform
}

func TestBuildParseRoundTrip(t *testing.T) {
	s := newStore()
	d1, _ := s.multiArch(t, "b", "one")
	d2, _ := s.multiArch(t, "b", "two")
	in := Bundle{Revision: rev, Source: "https://github.com/fleet/apps.git", Created: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		Images: []Image{
			{Ref: mustRef(t, "nginx:1.27"), Descriptor: d1},
			{Ref: mustRef(t, "ghcr.io/org/app@"+d2.Digest.String()), Descriptor: d2},
		}}
	raw, desc, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != hashOf(raw) || desc.Size != int64(len(raw)) {
		t.Fatalf("descriptor %v does not describe the bytes", desc)
	}
	raw2, _, _ := Build(in)
	if string(raw) != string(raw2) {
		t.Fatal("Build is not deterministic")
	}
	out, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if out.Revision != rev || out.Source != in.Source || !out.Created.Equal(in.Created) || len(out.Images) != 2 {
		t.Fatalf("round trip: %+v", out)
	}
	// Sorted by reference.
	if out.Images[0].Ref.String() != "docker.io/library/nginx:1.27" || out.Images[0].Descriptor.Digest != d1.Digest {
		t.Fatalf("first image %v", out.Images[0].Ref)
	}
	if !strings.Contains(string(raw), `"artifactType":"`+ArtifactType+`"`) {
		t.Fatalf("no artifactType in %s", raw)
	}
}

func TestGitDepsRoundTrip(t *testing.T) {
	s := newStore()
	d, _ := s.multiArch(t, "b", "x")
	deps := []GitDep{
		{Kind: GitDepRemoteBase, URL: "https://git.example.com/fleet/base.git", Commit: rev, Path: "deploy", Ref: "v1.2"},
		{Kind: GitDepSubmodule, URL: "https://git.example.com/fleet/lib.git", Commit: rev, Path: "vendor/lib"},
	}
	raw, _, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: mustRef(t, "nginx:1"), Descriptor: d}}, GitDeps: deps})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.GitDeps) != 2 || b.GitDeps[0] != deps[0] || b.GitDeps[1] != deps[1] {
		t.Fatalf("git deps %+v", b.GitDeps)
	}
	for _, bad := range []GitDep{
		{Kind: "lfs", URL: "https://h/x/y", Commit: rev, Path: "x"},
		{Kind: GitDepSubmodule, URL: "--upload-pack=x", Commit: rev, Path: "x"},
		{Kind: GitDepSubmodule, URL: "https://h/x/y", Commit: "abc", Path: "x"},
		{Kind: GitDepSubmodule, URL: "https://h/x/y", Commit: rev, Path: "../x"},
		{Kind: GitDepSubmodule, URL: "git@h:x/y", Commit: rev, Path: "x"},
		{Kind: GitDepRemoteBase, URL: "https://h/x/y", Commit: rev, Ref: "-x"},
	} {
		if _, _, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: mustRef(t, "nginx:1"), Descriptor: d}}, GitDeps: []GitDep{bad}}); err == nil {
			t.Errorf("Build accepted %+v", bad)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	d := v1.Descriptor{MediaType: types.OCIImageIndex, Size: 10, Digest: hashOf([]byte("x"))}
	other := hashOf([]byte("y")).String()
	for name, b := range map[string]Bundle{
		"short revision": {Revision: "abc"},
		"twice":          {Revision: rev, Images: []Image{{Ref: mustRef(t, "a:1"), Descriptor: d}, {Ref: mustRef(t, "a:1"), Descriptor: d}}},
		"digest differs": {Revision: rev, Images: []Image{{Ref: mustRef(t, "a@"+other), Descriptor: d}}},
		"layer type":     {Revision: rev, Images: []Image{{Ref: mustRef(t, "a:1"), Descriptor: v1.Descriptor{MediaType: types.OCILayer, Size: 1, Digest: d.Digest}}}},
	} {
		if _, _, err := Build(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseErrors(t *testing.T) {
	dig := hashOf([]byte("m")).String()
	entry := func(ann string, extra string) string {
		return `{"mediaType":"application/vnd.oci.image.index.v1+json","size":100,"digest":"` + dig + `"` + extra + `,"annotations":{"io.ballast.image.ref":"` + ann + `"}}`
	}
	doc := func(ms, ann string) string {
		if ann == "" {
			ann = `"org.opencontainers.image.revision":"` + rev + `","org.opencontainers.image.created":"2026-11-26T12:00:00Z"`
		}
		return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","artifactType":"` + ArtifactType + `","manifests":[` + ms + `],"annotations":{` + ann + `}}`
	}
	tests := []struct {
		name, in, want string
	}{
		{"not json", "{", "not a JSON image index"},
		{"schema", `{"schemaVersion":1}`, "schemaVersion 1"},
		{"media type", `{"schemaVersion":2,"mediaType":"x"}`, "mediaType"},
		{"artifact type", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}`, "not a ballast bundle"},
		{"no revision", doc("", `"org.opencontainers.image.created":"2026-11-26T12:00:00Z"`), "not a full 40-hex"},
		{"short revision", doc("", `"org.opencontainers.image.revision":"abc"`), "not a full 40-hex"},
		{"no created", doc("", `"org.opencontainers.image.revision":"`+rev+`"`), "created missing"},
		{"bad created", doc("", `"org.opencontainers.image.revision":"`+rev+`","org.opencontainers.image.created":"yesterday"`), "created"},
		{"bad digest", doc(`{"mediaType":"application/vnd.oci.image.index.v1+json","size":1,"digest":"sha256:zz"}`, ""), "not a JSON"},
		{"sha512", doc(`{"mediaType":"application/vnd.oci.image.index.v1+json","size":1,"digest":"sha512:`+strings.Repeat("a", 128)+`"}`, ""), "algorithm"},
		{"layer", doc(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":1,"digest":"`+dig+`"}`, ""), "not an image manifest"},
		{"size", doc(`{"mediaType":"application/vnd.oci.image.index.v1+json","size":0,"digest":"`+dig+`"}`, ""), "size 0"},
		{"no ref", doc(`{"mediaType":"application/vnd.oci.image.index.v1+json","size":1,"digest":"`+dig+`"}`, ""), "io.ballast.image.ref missing"},
		{"bad ref", doc(entry("Not A Ref", ""), ""), "manifests[0]"},
		{"short ref", doc(entry("nginx:1", ""), ""), "not fully qualified"},
		{"ref digest", doc(entry("docker.io/library/nginx@"+hashOf([]byte("other")).String(), ""), ""), "does not match"},
		{"twice", doc(entry("docker.io/library/nginx:1", "")+","+entry("docker.io/library/nginx:1", ""), ""), "listed twice"},
		{"huge", strings.Repeat(" ", oci.MaxManifestSize+1), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: error %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte(doc(entry("docker.io/library/nginx:1", ""), ""))); err != nil {
		t.Fatalf("valid document: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	s := newStore()
	d, _ := s.multiArch(f, "b", "x")
	raw, _, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: mustRef(f, "nginx:1"), Descriptor: d}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	chartRaw, _, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: mustRef(f, "charts.example.com/stable/cert-manager:1.15.0"), Descriptor: d,
		Chart: &Chart{RepoURL: "https://charts.example.com/stable", Name: "cert-manager", Version: "1.15.0"}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(chartRaw)
	depsRaw, _, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: mustRef(f, "nginx:1"), Descriptor: d}}, GitDeps: []GitDep{
		{Kind: GitDepSubmodule, URL: "https://git.example.com/fleet/lib.git", Commit: rev, Path: "vendor/lib"},
		{Kind: GitDepRemoteBase, URL: "ssh://git@git.example.com/fleet/base", Commit: rev, Path: "deploy", Ref: "v1.2"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(depsRaw)
	f.Add([]byte(`{"schemaVersion":2}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := Parse(in)
		if err != nil {
			return
		}
		// Whatever parses must build again and parse to the same images.
		out, _, err := Build(*b)
		if err != nil {
			t.Fatalf("parsed bundle does not build: %v", err)
		}
		b2, err := Parse(out)
		if err != nil || len(b2.Images) != len(b.Images) || b2.Revision != b.Revision {
			t.Fatalf("rebuilt bundle: %v", err)
		}
	})
}

func TestCheckComplete(t *testing.T) {
	const up = "fleet/apps-bundles"
	build := func(t *testing.T) (*store, *Bundle, map[string][]v1.Hash) {
		s := newStore()
		d, per := s.multiArch(t, up, "img")
		raw, desc, err := Build(Bundle{Revision: rev, Images: []Image{{Ref: mustRef(t, "nginx:1"), Descriptor: d}}})
		if err != nil {
			t.Fatal(err)
		}
		s.manifests[up+"@"+desc.Digest.String()] = raw
		s.tags[up+":"+rev] = desc.Digest
		b, _ := Parse(raw)
		return s, b, per
	}
	armOnly, _ := oci.ParsePlatforms("linux/arm64")
	armV8, _ := oci.ParsePlatforms("linux/arm64/v8")
	riscv, _ := oci.ParsePlatforms("linux/riscv64")
	tests := []struct {
		name    string
		damage  func(s *store, per map[string][]v1.Hash)
		sel     oci.Platforms
		missing string
	}{
		{"complete", func(*store, map[string][]v1.Hash) {}, nil, ""},
		{"no index", func(s *store, _ map[string][]v1.Hash) { delete(s.tags, up+":"+rev) }, nil, "bundle index"},
		{"amd64 layer gone", func(s *store, per map[string][]v1.Hash) { delete(s.blobs, up+"@"+per["amd64"][2].String()) }, nil, "blob"},
		{"amd64 layer gone, arm64 selected", func(s *store, per map[string][]v1.Hash) { delete(s.blobs, up+"@"+per["amd64"][2].String()) }, armOnly, ""},
		// The index labels arm64 without a variant (as buildx does); the
		// edge asks for linux/arm64/v8: the same platform.
		{"amd64 layer gone, arm64/v8 selected", func(s *store, per map[string][]v1.Hash) { delete(s.blobs, up+"@"+per["amd64"][2].String()) }, armV8, ""},
		{"arm64 layer gone, arm64/v8 selected", func(s *store, per map[string][]v1.Hash) { delete(s.blobs, up+"@"+per["arm64"][2].String()) }, armV8, "blob"},
		// Nothing in the index for the selection: never complete.
		{"no riscv64 in the index", func(*store, map[string][]v1.Hash) {}, riscv, "no manifest for linux/riscv64 in index sha256:"},
		{"arm64 manifest gone", func(s *store, per map[string][]v1.Hash) { delete(s.manifests, up+"@"+per["arm64"][0].String()) }, armOnly, "manifest"},
		{"short blob", func(s *store, per map[string][]v1.Hash) { s.blobs[up+"@"+per["arm64"][1].String()] = 1 }, nil, "size 1"},
		{"tampered manifest", func(s *store, per map[string][]v1.Hash) { s.manifests[up+"@"+per["arm64"][0].String()] = []byte("{}") }, nil, "bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, per := build(t)
			tc.damage(s, per)
			r, err := CheckComplete(context.Background(), s, Placement{BundleRepo: up}, rev, tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			if tc.missing == "" {
				if !r.Complete() {
					t.Fatalf("incomplete: %v", r.Missing)
				}
				return
			}
			if r.Complete() || !strings.Contains(fmt.Sprint(r.Missing), tc.missing) {
				t.Fatalf("missing %v, want %q", r.Missing, tc.missing)
			}
		})
	}
	t.Run("edge tags", func(t *testing.T) {
		s, b, _ := build(t)
		l := Placement{BundleRepo: up, ImageRepo: func(imageref.Ref) string { return up }, CheckTags: true}
		r, _ := CheckComplete(context.Background(), s, l, rev, nil)
		if r.Complete() || !strings.Contains(fmt.Sprint(r.Missing), "tag") {
			t.Fatalf("untagged image counted complete: %v", r.Missing)
		}
		s.tags[up+":1"] = b.Images[0].Descriptor.Digest
		if r, _ = CheckComplete(context.Background(), s, l, rev, nil); !r.Complete() {
			t.Fatalf("tagged: %v", r.Missing)
		}
	})
}

func TestCountKinds(t *testing.T) {
	got := CountKinds([]Image{{}, {Chart: &Chart{}}, {}, {Attached: &Attachment{}}, {Chart: &Chart{}}})
	if want := (Kinds{Images: 2, Charts: 2, Attached: 1}); got != want {
		t.Fatalf("CountKinds = %+v, want %+v", got, want)
	}
}
