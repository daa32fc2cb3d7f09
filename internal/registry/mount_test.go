package registry_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
)

// TestMountWithoutFrom: a mount request that names no source repository
// links a blob the registry holds under any repository, and only then.
func TestMountWithoutFrom(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	ctx := context.Background()
	api := randomImage(t, 2)
	push(t, s, "registry.example.com/team/api:1", api)
	ls, _ := api.Layers()
	base, _ := ls[0].Digest()
	baseSize, _ := ls[0].Size()

	// An image whose manifest is deleted and collected: its blobs are gone.
	gone := randomImage(t, 1)
	gd := push(t, s, "registry.example.com/team/gone:1", gone)
	gls, _ := gone.Layers()
	goneLayer, _ := gls[0].Digest()
	if r := do(t, "DELETE", s.URL+"/v2/registry.example.com/team/gone/manifests/"+gd.String(), nil, "auth", creds(s)); r.status != 202 {
		t.Fatalf("delete manifest: %d %s", r.status, r.body)
	}
	if err := s.GarbageCollect(ctx, registry.GCOptions{}); err != nil {
		t.Fatal(err)
	}

	unknown := mustHash(t, "never pushed")
	// What HoldsBlob says agrees with what a mount without from does.
	for _, c := range []struct {
		h    v1.Hash
		want bool
	}{{base, true}, {goneLayer, false}, {unknown, false}} {
		if got, err := s.HoldsBlob(ctx, c.h.String()); err != nil || got != c.want {
			t.Fatalf("HoldsBlob(%s) = %v, %v; want %v", c.h, got, err, c.want)
		}
	}
	if _, err := s.HoldsBlob(ctx, "sha256:nothex"); err == nil {
		t.Fatal("HoldsBlob of a malformed digest: no error")
	}

	mount := func(repo string, h v1.Hash, extra url.Values, hdr ...string) result {
		q := url.Values{"mount": {h.String()}}
		for k, v := range extra {
			q[k] = v
		}
		return do(t, "POST", s.URL+"/v2/"+repo+"/blobs/uploads/?"+q.Encode(), nil, hdr...)
	}
	head := func(repo string, h v1.Hash) int {
		return do(t, "HEAD", s.URL+"/v2/"+repo+"/blobs/"+h.String(), nil).status
	}

	tests := []struct {
		name   string
		repo   string
		blob   v1.Hash
		extra  url.Values
		hdr    []string
		status int
		linked bool
	}{
		{"held under another repository", "registry.example.com/team/worker", base, nil, []string{"auth", creds(s)}, 201, true},
		{"already in the repository", "registry.example.com/team/api", base, nil, []string{"auth", creds(s)}, 201, true},
		{"never held: an upload session instead", "registry.example.com/team/new", unknown, nil, []string{"auth", creds(s)}, 202, false},
		{"garbage-collected: an upload session instead", "registry.example.com/team/again", goneLayer, nil, []string{"auth", creds(s)}, 202, false},
		{"anonymous: refused", "registry.example.com/team/anon", base, nil, nil, 401, false},
		{"with from: Distribution's own mount", "registry.example.com/team/from", base, url.Values{"from": {"registry.example.com/team/api"}}, []string{"auth", creds(s)}, 201, true},
		{"with from that lacks it: an upload session", "registry.example.com/team/from2", base, url.Values{"from": {"registry.example.com/team/none"}}, []string{"auth", creds(s)}, 202, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mount(tc.repo, tc.blob, tc.extra, tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("mount: %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status == 201 && r.header.Get("Docker-Content-Digest") != tc.blob.String() {
				t.Fatalf("Docker-Content-Digest %q", r.header.Get("Docker-Content-Digest"))
			}
			want := 404
			if tc.linked {
				want = 200
			}
			if got := head(tc.repo, tc.blob); got != want {
				t.Fatalf("HEAD after mount: %d, want %d", got, want)
			}
		})
	}
	// The linked blob reads back whole in its new repository.
	r := do(t, "GET", s.URL+"/v2/registry.example.com/team/worker/blobs/"+base.String(), nil)
	if r.status != 200 || int64(len(r.body)) != baseSize {
		t.Fatalf("GET linked blob: %d, %d bytes, want %d", r.status, len(r.body), baseSize)
	}

	// While read-only (a garbage collection), a mount is a write: refused.
	if err := s.SetReadOnly(ctx, true); err != nil {
		t.Fatal(err)
	}
	if r := mount("registry.example.com/team/ro", base, nil, "auth", creds(s)); r.status != 503 {
		t.Fatalf("mount while read-only: %d %s", r.status, r.body)
	}
	if err := s.SetReadOnly(ctx, false); err != nil {
		t.Fatal(err)
	}
}

// TestHoldsContent: a repository holds content once a blob is linked into
// it (a whole image, or a lone blob of an image not yet complete) or it
// has a tag (an index of no blobs); one never written, or whose name is
// only the prefix of another, holds nothing.
func TestHoldsContent(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	ctx := context.Background()
	push(t, s, "registry.example.com/team/api:1", randomImage(t, 1))

	// A lone blob: what a copy cut before any manifest leaves.
	r, err := name.NewRepository(s.Host+"/registry.example.com/team/partial", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	l, err := random.Layer(1024, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(r, l, auth(s)); err != nil {
		t.Fatal(err)
	}
	// An index of no manifests: a tag and no blob.
	idx, err := name.ParseReference(s.Host+"/registry.example.com/team/index:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(idx, empty.Index, auth(s)); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		repo string
		want bool
	}{
		{"registry.example.com/team/api", true},
		{"registry.example.com/team/partial", true},
		{"registry.example.com/team/index", true},
		{"registry.example.com/team/never", false},
		{"registry.example.com/team", false},
		{"registry.example.com/team/ap", false},
	} {
		if got, err := s.HoldsContent(ctx, c.repo); err != nil || got != c.want {
			t.Errorf("HoldsContent(%s) = %v, %v; want %v", c.repo, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a b/c", "a//b", "../x"} {
		if _, err := s.HoldsContent(ctx, bad); err == nil {
			t.Errorf("HoldsContent(%q): no error", bad)
		}
	}
}
