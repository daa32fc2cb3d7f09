package registryclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/testutil/toxiproxy"
)

// recorder records every request a Remote sends ("METHOD path").
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

// FetchRef reads a tagged manifest from a real registry in one request:
// no ping (anonymous), no HEAD first, and the descriptor is the one
// Resolve would give.
func TestFetchRefOneRequest(t *testing.T) {
	ctx := context.Background()
	up := regserver.Start(t, regserver.Options{})
	img := testimage.Image(t, "linux/amd64", 1, 1<<10)
	tag, _ := name.NewTag(up.Repo("a/img")+":v1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	rec := &recorder{next: registryclient.NewTransport()}
	r, err := registryclient.New(up.Repo("a/img"), registryclient.WithInsecure(true), registryclient.WithTransport(rec),
		registryclient.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	d, raw, err := r.FetchRef(ctx, "v1")
	if err != nil || d.Digest != want || d.MediaType != types.OCIManifestSchema1 || oci.VerifyBytes(raw, d) != nil {
		t.Fatalf("FetchRef v1: %+v, %v", d, err)
	}
	if got := rec.list(); len(got) != 1 || got[0] != "GET /v2/a/img/manifests/v1" {
		t.Fatalf("requests %q, want the one GET", got)
	}
	if _, _, err := r.FetchRef(ctx, "nope"); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("absent tag: %v, want ErrNotFound", err)
	}
	if _, _, err := r.FetchRef(ctx, want.String()); err != nil {
		t.Fatalf("by digest: %v", err)
	}
}

// fakeRegistry answers one manifest at /v2/r/manifests/<any>; with token
// set, every request needs "Bearer token" (an anonymous token, as Docker
// Hub gives) and the answer to anything else is a 401 challenge.
func fakeRegistry(t *testing.T, raw []byte, contentType, digest string, token bool) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			fmt.Fprint(w, `{"token":"anon-token"}`)
			return
		}
		if token && req.Header.Get("Authorization") != "Bearer anon-token" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if req.URL.Path == "/v2/" {
			return
		}
		if !strings.HasPrefix(req.URL.Path, "/v2/r/manifests/") {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", contentType)
		if digest != "" {
			w.Header().Set("Docker-Content-Digest", digest)
		}
		_, _ = w.Write(raw)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchRefAnswers(t *testing.T) {
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	h, _, _ := v1.SHA256(strings.NewReader(string(raw)))
	other := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name        string
		ref         string
		contentType string
		digest      string
		token       bool
		wantMT      types.MediaType
		wantErr     error
	}{
		{"tag, digest header", "v1", string(types.OCIImageIndex), h.String(), false, types.OCIImageIndex, nil},
		{"tag, no digest header", "v1", string(types.OCIImageIndex), "", false, types.OCIImageIndex, nil},
		{"generic content type: the manifest's mediaType", "v1", "application/octet-stream", "", false, types.OCIImageIndex, nil},
		{"digest header disagrees with the bytes", "v1", string(types.OCIImageIndex), other, false, "", oci.ErrDigestMismatch},
		{"asked digest disagrees with the bytes", other, string(types.OCIImageIndex), "", false, "", oci.ErrDigestMismatch},
		{"anonymous token after a 401", "v1", string(types.OCIImageIndex), h.String(), true, types.OCIImageIndex, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeRegistry(t, raw, tc.contentType, tc.digest, tc.token)
			rec := &recorder{next: http.DefaultTransport}
			r, err := registryclient.New(strings.TrimPrefix(srv.URL, "http://")+"/r", registryclient.WithInsecure(true),
				registryclient.WithTransport(rec), registryclient.WithKeychain(authn.NewMultiKeychain()))
			if err != nil {
				t.Fatal(err)
			}
			d, got, err := r.FetchRef(context.Background(), tc.ref)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || d.Digest != h || d.Size != int64(len(raw)) || d.MediaType != tc.wantMT || string(got) != string(raw) {
				t.Fatalf("FetchRef: %+v %v", d, err)
			}
			reqs := rec.list()
			if !tc.token && len(reqs) != 1 {
				t.Fatalf("requests %q, want one", reqs)
			}
			// With a token: the refused request, the ping, the token, the
			// request again; a second fetch is one request.
			if tc.token {
				n := len(reqs)
				if _, _, err := r.FetchRef(context.Background(), tc.ref); err != nil {
					t.Fatal(err)
				}
				if again := rec.list()[n:]; len(again) != 1 {
					t.Fatalf("second fetch: requests %q, want one", again)
				}
			}
		})
	}
}

// A link that stalls without a reset (the connection open, nothing
// arriving) turns a manifest read or a HEAD into ErrStalled after the idle
// timeout, as a blob download does, instead of waiting for TCP to give
// up; once the link flows again the same Remote reads.
func TestManifestReadsStallIntoErrStalled(t *testing.T) {
	ctx := context.Background()
	up := regserver.Start(t, regserver.Options{})
	img := testimage.Image(t, "linux/amd64", 1, 1024)
	tag, _ := name.NewTag(up.Repo("a/img")+":v1", name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	proxy := toxiproxy.Start(t, up.Addr)
	r, err := registryclient.New(proxy.Addr+"/a/img", registryclient.WithInsecure(true), registryclient.WithIdleTimeout(300*time.Millisecond),
		registryclient.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	proxy.Stall()
	for name, read := range map[string]func() error{
		"FetchRef":       func() error { _, _, err := r.FetchRef(ctx, "v1"); return err },
		"FetchManifest":  func() error { _, err := r.FetchManifest(ctx, v1.Descriptor{Digest: want}); return err },
		"Resolve (HEAD)": func() error { _, err := r.Resolve(ctx, "v1"); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- read() }()
		select {
		case err := <-done:
			if !errors.Is(err, registryclient.ErrStalled) {
				t.Errorf("%s over a stalled link: %v, want ErrStalled", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s over a stalled link still waiting after 20 s (idle timeout 300 ms)", name)
		}
	}
	proxy.Remove("stall")
	if d, _, err := r.FetchRef(ctx, "v1"); err != nil || d.Digest != want {
		t.Fatalf("after the stall: %v, %v", d.Digest, err)
	}
}
