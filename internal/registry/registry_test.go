package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
)

// randomImage is a small random image with OS/architecture set to this
// machine's (containerd wants them).
func randomImage(t testing.TB, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(1024, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func auth(s *edgeregistry.Server) remote.Option {
	c := s.Credentials()
	return remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password})
}

// push writes img as ref (relative to the registry: "docker.io/library/x:1").
func push(t testing.TB, s *edgeregistry.Server, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(s.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, auth(s)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, method, url string, body io.Reader, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "auth" {
			u, p, _ := strings.Cut(hdr[i+1], ":")
			req.SetBasicAuth(u, p)
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func creds(s *edgeregistry.Server) string {
	c := s.Credentials()
	return c.Username + ":" + c.Password
}

func TestAuth(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	img := randomImage(t, 1)
	d := push(t, s, "docker.io/library/a:1", img)

	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		wantStatus int
	}{
		{"base anonymous", "GET", "/v2/", "", 200},
		{"manifest GET anonymous", "GET", "/v2/docker.io/library/a/manifests/1", "", 200},
		{"manifest HEAD anonymous", "HEAD", "/v2/docker.io/library/a/manifests/" + d.String(), "", 200},
		{"tags anonymous", "GET", "/v2/docker.io/library/a/tags/list", "", 200},
		{"catalog anonymous", "GET", "/v2/_catalog", "", 200},
		{"reads ignore bad credentials", "GET", "/v2/", "ballast:wrong", 200},
		{"upload without credentials", "POST", "/v2/docker.io/library/a/blobs/uploads/", "", 401},
		{"upload with bad password", "POST", "/v2/docker.io/library/a/blobs/uploads/", "ballast:wrong", 401},
		{"upload with bad user", "POST", "/v2/docker.io/library/a/blobs/uploads/", "x:" + s.Credentials().Password, 401},
		{"delete without credentials", "DELETE", "/v2/docker.io/library/a/manifests/" + d.String(), "", 401},
		{"put without credentials", "PUT", "/v2/docker.io/library/a/manifests/2", "", 401},
		{"patch without credentials", "PATCH", "/v2/docker.io/library/a/blobs/uploads/x", "", 401},
		{"upload with credentials", "POST", "/v2/docker.io/library/a/blobs/uploads/", creds(s), 202},
	}
	// A page of another origin that the browser attaches cached Basic
	// credentials to: a "simple" cross-site POST needs no preflight.
	for _, h := range [][]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}} {
		r := do(t, "POST", s.URL+"/v2/docker.io/library/a/blobs/uploads/", nil, "auth", creds(s), h[0], h[1], "Content-Type", "text/plain")
		if r.status != http.StatusForbidden || !strings.Contains(r.body, `"DENIED"`) {
			t.Errorf("upload with credentials and %s: %s: status %d %s, want 403 DENIED", h[0], h[1], r.status, r.body)
		}
	}
	if r := do(t, "GET", s.URL+"/v2/docker.io/library/a/manifests/1", nil, "Origin", "http://evil.example"); r.status != 200 {
		t.Errorf("anonymous read with an Origin: %d", r.status)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"auth", tc.auth}
			}
			r := do(t, tc.method, s.URL+tc.path, nil, hdr...)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if tc.wantStatus == 401 {
				if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="ballast"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if !strings.Contains(r.body, `"UNAUTHORIZED"`) {
					t.Errorf("body %q lacks the OCI error code", r.body)
				}
			}
		})
	}

	// Deleting with credentials works (deletes are enabled for retention).
	if r := do(t, "DELETE", s.URL+"/v2/docker.io/library/a/manifests/"+d.String(), nil, "auth", creds(s)); r.status != 202 {
		t.Fatalf("authenticated delete: %d %s", r.status, r.body)
	}
}

func TestNSRouting(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	imgs := map[string]v1.Hash{
		"docker.io/library/x:1":     push(t, s, "docker.io/library/x:1", randomImage(t, 1)),
		"ghcr.io/org/y:2":           push(t, s, "ghcr.io/org/y:2", randomImage(t, 1)),
		"127.0.0.1_5001/team/z:3":   push(t, s, "127.0.0.1_5001/team/z:3", randomImage(t, 1)),
		"docker.io/docker.io/odd:4": push(t, s, "docker.io/docker.io/odd:4", randomImage(t, 1)),
	}
	tests := []struct {
		name, path string
		wantStatus int
		wantDigest string
	}{
		{"docker hub", "/v2/library/x/manifests/1?ns=docker.io", 200, imgs["docker.io/library/x:1"].String()},
		{"docker hub by digest", "/v2/library/x/manifests/" + imgs["docker.io/library/x:1"].String() + "?ns=docker.io", 200, imgs["docker.io/library/x:1"].String()},
		{"docker hub alias", "/v2/library/x/manifests/1?ns=registry-1.docker.io", 200, imgs["docker.io/library/x:1"].String()},
		{"ghcr", "/v2/org/y/manifests/2?ns=ghcr.io", 200, imgs["ghcr.io/org/y:2"].String()},
		{"host:port", "/v2/team/z/manifests/3?ns=127.0.0.1:5001", 200, imgs["127.0.0.1_5001/team/z:3"].String()},
		{"upper-case ns", "/v2/org/y/manifests/2?ns=GHCR.io", 200, imgs["ghcr.io/org/y:2"].String()},
		{"no ns is served as given", "/v2/ghcr.io/org/y/manifests/2", 200, imgs["ghcr.io/org/y:2"].String()},
		{"already prefixed name is prefixed again", "/v2/docker.io/odd/manifests/4?ns=docker.io", 200, imgs["docker.io/docker.io/odd:4"].String()},
		{"already prefixed name is not unprefixed", "/v2/docker.io/library/x/manifests/1?ns=docker.io", 404, ""},
		{"wrong registry", "/v2/library/x/manifests/1?ns=ghcr.io", 404, ""},
		{"bad ns", "/v2/library/x/manifests/1?ns=a/b", 400, ""},
		{"empty ns", "/v2/library/x/manifests/1?ns=", 400, ""},
		{"base ignores ns", "/v2/?ns=docker.io", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "GET", s.URL+tc.path, nil, "Accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json")
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if tc.wantDigest != "" {
				if got := r.header.Get("Docker-Content-Digest"); got != tc.wantDigest {
					t.Fatalf("digest %s, want %s", got, tc.wantDigest)
				}
			}
		})
	}

	t.Run("blob and tags through ns", func(t *testing.T) {
		img := randomImage(t, 1)
		push(t, s, "127.0.0.1_5001/team/w:1", img)
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		r := do(t, "GET", s.URL+"/v2/team/w/blobs/"+ld.String()+"?ns=127.0.0.1:5001", nil)
		if r.status != 200 || v1.Hash(mustHash(t, r.body)) != ld {
			t.Fatalf("blob through ns: %d", r.status)
		}
		r = do(t, "GET", s.URL+"/v2/team/w/tags/list?ns=127.0.0.1:5001", nil)
		var tags struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal([]byte(r.body), &tags); err != nil || r.status != 200 {
			t.Fatalf("tags: %d %s", r.status, r.body)
		}
		if tags.Name != "127.0.0.1_5001/team/w" || len(tags.Tags) != 1 {
			t.Fatalf("tags %+v", tags)
		}
	})

	t.Run("tag list paging keeps ns in Link", func(t *testing.T) {
		for _, tag := range []string{"a", "b", "c"} {
			push(t, s, "ghcr.io/org/paged:"+tag, randomImage(t, 1))
		}
		r := do(t, "GET", s.URL+"/v2/org/paged/tags/list?n=1&ns=ghcr.io", nil)
		if r.status != 200 || !strings.Contains(r.body, `"a"`) {
			t.Fatalf("first page: %d %s", r.status, r.body)
		}
		link := r.header.Get("Link")
		start, end := strings.Index(link, "<"), strings.Index(link, ">")
		if start != 0 || end < 0 || !strings.Contains(link, `rel="next"`) {
			t.Fatalf("Link %q", link)
		}
		next := link[1:end]
		if !strings.HasPrefix(next, "/v2/org/paged/tags/list?") || !strings.Contains(next, "ns=ghcr.io") {
			t.Fatalf("next page %q not in the client's ns form", next)
		}
		r = do(t, "GET", s.URL+next, nil)
		if r.status != 200 || !strings.Contains(r.body, `"b"`) || strings.Contains(r.body, `"a"`) {
			t.Fatalf("second page: %d %s", r.status, r.body)
		}
	})

	t.Run("upload through ns keeps ns in Location", func(t *testing.T) {
		r := do(t, "POST", s.URL+"/v2/library/up/blobs/uploads/?ns=docker.io", nil, "auth", creds(s))
		if r.status != 202 {
			t.Fatalf("start upload: %d %s", r.status, r.body)
		}
		loc := r.header.Get("Location")
		if !strings.HasPrefix(loc, "/v2/library/up/blobs/uploads/") || !strings.Contains(loc, "ns=docker.io") {
			t.Fatalf("Location %q not in the client's ns form", loc)
		}
		content := "hello ns"
		dg := v1.Hash{Algorithm: "sha256", Hex: sha256Hex(content)}
		r = do(t, "PUT", s.URL+loc+"&digest="+dg.String(), strings.NewReader(content), "auth", creds(s), "Content-Type", "application/octet-stream")
		if r.status != 201 {
			t.Fatalf("finish upload: %d %s", r.status, r.body)
		}
		if loc := r.header.Get("Location"); loc != "/v2/library/up/blobs/"+dg.String()+"?ns=docker.io" {
			t.Fatalf("blob Location %q", loc)
		}
		if r := do(t, "GET", s.URL+"/v2/docker.io/library/up/blobs/"+dg.String(), nil); r.status != 200 || r.body != content {
			t.Fatalf("blob under the mapped name: %d %q", r.status, r.body)
		}
	})

	t.Run("catalog lists mapped names", func(t *testing.T) {
		r := do(t, "GET", s.URL+"/v2/_catalog?ns=docker.io", nil)
		if r.status != 200 || !strings.Contains(r.body, `"127.0.0.1_5001/team/z"`) || !strings.Contains(r.body, `"docker.io/library/x"`) {
			t.Fatalf("catalog: %d %s", r.status, r.body)
		}
	})
}

func TestNoBlobDescriptorCache(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	img := randomImage(t, 1)
	push(t, s, "docker.io/library/gone:1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	url := s.URL + "/v2/docker.io/library/gone/blobs/" + ld.String()
	// Twice, so any cache would have seen it.
	for range 2 {
		if r := do(t, "HEAD", url, nil); r.status != 200 {
			t.Fatalf("HEAD before removal: %d", r.status)
		}
	}
	dir := filepath.Join(s.StorageDir(), "docker", "registry", "v2", "blobs", "sha256", ld.Hex[:2], ld.Hex)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "HEAD", url, nil); r.status != 404 {
		t.Fatalf("HEAD after the blob file was removed: %d, want 404", r.status)
	}
	if r := do(t, "HEAD", url+"?ns=x", nil); r.status != 404 {
		// ns=x maps to another repository; also absent.
		t.Fatalf("HEAD through ns: %d", r.status)
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	credFile := filepath.Join(dir, "sub", "registry-credentials")
	s := edgeregistry.Start(t, edgeregistry.Options{DataDir: dir, CredentialsFile: credFile})
	first := s.Credentials()
	fi, err := os.Stat(credFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	if first.Username != registry.DefaultUsername || len(first.Password) < 32 {
		t.Fatalf("generated credentials %v (password length %d)", first, len(first.Password))
	}
	if strings.Contains(fmt.Sprint(first), first.Password) {
		t.Fatal("Credentials.String leaks the password")
	}
	d := push(t, s, "docker.io/library/keep:1", randomImage(t, 1))
	s.Stop()

	// A restart reuses the file and the content.
	s2 := edgeregistry.Start(t, edgeregistry.Options{DataDir: dir, CredentialsFile: credFile})
	if s2.Credentials() != first {
		t.Fatal("restart generated new credentials")
	}
	if r := do(t, "HEAD", s2.URL+"/v2/docker.io/library/keep/manifests/"+d.String(), nil); r.status != 200 {
		t.Fatalf("content after restart: %d", r.status)
	}
	s2.Stop()

	// A malformed file is a clear error, and is left alone.
	if err := os.WriteFile(credFile, []byte("no-colon-here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = registry.New(context.Background(), registry.Options{DataDir: dir, CredentialsFile: credFile})
	if err == nil || !strings.Contains(err.Error(), credFile) || !strings.Contains(err.Error(), "no ':'") {
		t.Fatalf("malformed credentials: err = %v", err)
	}
	if b, _ := os.ReadFile(credFile); string(b) != "no-colon-here\n" {
		t.Fatal("malformed credentials file was overwritten")
	}

	// A user-provided file is used as is.
	if err := os.WriteFile(credFile, []byte("sync:s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3 := edgeregistry.Start(t, edgeregistry.Options{DataDir: dir, CredentialsFile: credFile})
	if got := s3.Credentials(); got != (registry.Credentials{Username: "sync", Password: "s3cret"}) {
		t.Fatalf("credentials %+v", got)
	}
	push(t, s3, "docker.io/library/other:1", randomImage(t, 1))
}

func TestReadOnly(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	ctx := context.Background()
	d := push(t, s, "docker.io/library/ro:1", randomImage(t, 1))

	if err := s.SetReadOnly(ctx, true); err != nil {
		t.Fatal(err)
	}
	if !s.ReadOnly() {
		t.Fatal("ReadOnly() = false after SetReadOnly(true)")
	}
	r := do(t, "POST", s.URL+"/v2/docker.io/library/ro/blobs/uploads/", nil, "auth", creds(s))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("write while read-only: %d (Retry-After %q)", r.status, r.header.Get("Retry-After"))
	}
	if r := do(t, "DELETE", s.URL+"/v2/docker.io/library/ro/manifests/"+d.String(), nil, "auth", creds(s)); r.status != http.StatusServiceUnavailable {
		t.Fatalf("delete while read-only: %d", r.status)
	}
	if r := do(t, "GET", s.URL+"/v2/docker.io/library/ro/manifests/1?ns=", nil); r.status != 400 {
		t.Fatalf("sanity: %d", r.status)
	}
	if r := do(t, "GET", s.URL+"/v2/library/ro/manifests/1?ns=docker.io", nil, "Accept", "application/vnd.oci.image.manifest.v1+json"); r.status != 200 {
		t.Fatalf("pull while read-only: %d %s", r.status, r.body)
	}
	if err := s.SetReadOnly(ctx, false); err != nil {
		t.Fatal(err)
	}
	push(t, s, "docker.io/library/ro:2", randomImage(t, 1))

	t.Run("waits for running writes", func(t *testing.T) {
		r := do(t, "POST", s.URL+"/v2/docker.io/library/ro/blobs/uploads/", nil, "auth", creds(s))
		if r.status != 202 {
			t.Fatalf("start upload: %d", r.status)
		}
		loc := r.header.Get("Location")
		pr, pw := io.Pipe()
		patchDone := make(chan result, 1)
		go func() {
			patchDone <- do(t, "PATCH", s.URL+loc, pr, "auth", creds(s), "Content-Type", "application/octet-stream")
		}()
		// More than the socket buffers hold: this returns only once the
		// handler is reading the body, i.e. the write is running.
		if _, err := pw.Write(make([]byte, 16<<20)); err != nil {
			t.Fatal(err)
		}
		roDone := make(chan error, 1)
		go func() { roDone <- s.SetReadOnly(ctx, true) }()
		select {
		case err := <-roDone:
			t.Fatalf("SetReadOnly returned (%v) while a write was running", err)
		case <-time.After(300 * time.Millisecond):
		}
		pw.Write([]byte("second half"))
		pw.Close()
		if r := <-patchDone; r.status != 202 {
			t.Fatalf("PATCH: %d %s", r.status, r.body)
		}
		select {
		case err := <-roDone:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SetReadOnly did not return after the write finished")
		}
		if err := s.SetReadOnly(ctx, false); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancelled wait restores the state", func(t *testing.T) {
		r := do(t, "POST", s.URL+"/v2/docker.io/library/ro/blobs/uploads/", nil, "auth", creds(s))
		loc := r.header.Get("Location")
		pr, pw := io.Pipe()
		patchDone := make(chan result, 1)
		go func() {
			patchDone <- do(t, "PATCH", s.URL+loc, pr, "auth", creds(s), "Content-Type", "application/octet-stream")
		}()
		pw.Write(make([]byte, 16<<20))
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := s.SetReadOnly(short, true); err == nil {
			t.Fatal("SetReadOnly succeeded with a write running and an expired context")
		}
		if s.ReadOnly() {
			t.Fatal("still read-only after a cancelled SetReadOnly")
		}
		pw.Close()
		<-patchDone
	})
}

func TestGarbageCollect(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	ctx := context.Background()
	keep := randomImage(t, 2)
	drop := randomImage(t, 2)
	kd := push(t, s, "docker.io/library/keep:1", keep)
	dd := push(t, s, "ghcr.io/org/drop:1", drop)
	// A digest-only (untagged) manifest must survive the default GC.
	untagged := randomImage(t, 1)
	ud, _ := untagged.Digest()
	ur, _ := name.ParseReference(s.Host+"/ghcr.io/org/bydigest@"+ud.String(), name.Insecure)
	if err := remote.Write(ur, untagged, auth(s)); err != nil {
		t.Fatal(err)
	}

	blobs := func(img v1.Image) []v1.Hash {
		ls, _ := img.Layers()
		var hs []v1.Hash
		for _, l := range ls {
			h, _ := l.Digest()
			hs = append(hs, h)
		}
		cn, _ := img.ConfigName()
		return append(hs, cn)
	}
	// Retention deletes the manifest, then collects.
	if r := do(t, "DELETE", s.URL+"/v2/ghcr.io/org/drop/manifests/"+dd.String(), nil, "auth", creds(s)); r.status != 202 {
		t.Fatalf("delete manifest: %d %s", r.status, r.body)
	}
	blobFile := func(h v1.Hash) string {
		return filepath.Join(s.StorageDir(), "docker", "registry", "v2", "blobs", h.Algorithm, h.Hex[:2], h.Hex, "data")
	}
	if err := s.GarbageCollect(ctx, registry.GCOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	for _, h := range blobs(drop) {
		if _, err := os.Stat(blobFile(h)); err != nil {
			t.Fatalf("dry run removed %s: %v", h, err)
		}
	}
	if err := s.GarbageCollect(ctx, registry.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.ReadOnly() {
		t.Fatal("still read-only after GarbageCollect")
	}
	for _, h := range blobs(drop) {
		if _, err := os.Stat(blobFile(h)); !os.IsNotExist(err) {
			t.Errorf("unreferenced blob %s survived: %v", h, err)
		}
	}
	for _, h := range append(blobs(keep), blobs(untagged)...) {
		if _, err := os.Stat(blobFile(h)); err != nil {
			t.Errorf("referenced blob %s removed: %v", h, err)
		}
	}
	// What is kept still pulls, byte for byte.
	kr, _ := name.ParseReference(s.Host+"/docker.io/library/keep:1", name.Insecure)
	got, err := remote.Image(kr)
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd != kd {
		t.Fatalf("digest %s, want %s", gd, kd)
	}
	if err := validateImage(got); err != nil {
		t.Fatal(err)
	}
	// And writes work again.
	push(t, s, "docker.io/library/keep:2", randomImage(t, 1))

	// GC of an empty registry is fine.
	empty := edgeregistry.Start(t, edgeregistry.Options{})
	if err := empty.GarbageCollect(ctx, registry.GCOptions{}); err != nil {
		t.Fatalf("GC of an empty registry: %v", err)
	}
}

// TestTransport uses the registry in-process, without a listener.
func TestTransport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reg, err := registry.New(ctx, registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "creds")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	img := randomImage(t, 3)
	ref, _ := name.ParseReference("edge.invalid/docker.io/library/inproc:1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithTransport(reg.Transport()), remote.WithContext(ctx)); err != nil {
		t.Fatalf("push in-process: %v", err)
	}
	got, err := remote.Image(ref, remote.WithTransport(reg.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(got); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if gd, _ := got.Digest(); gd != want {
		t.Fatalf("digest %s, want %s", gd, want)
	}
	// A cancelled context stops a request.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", "http://edge.invalid/v2/", nil)
	if _, err := reg.Transport().RoundTrip(req); err == nil {
		t.Fatal("cancelled request succeeded")
	}
}

// TestSparseIndex: the edge keeps only selected platforms, so an index whose
// other children are absent is accepted (validation.manifests.indexes.platforms
// "none"), and so is one whose children live in other repositories (bundle
// indexes). An image manifest with a missing layer is still refused.
func TestSparseIndex(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	amd := randomImage(t, 1)
	ad := push(t, s, "docker.io/library/multi@"+mustDigest(t, amd).String(), amd)
	absent := v1.Hash{Algorithm: "sha256", Hex: sha256Hex("never pushed")}
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":"amd64"}},`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":123,"platform":{"os":"linux","architecture":"arm64"}}]}`,
		ad, mustSize(t, amd), absent)
	for _, repo := range []string{"docker.io/library/multi", "ballast/bundles/example.com/fleet/apps"} {
		r := do(t, "PUT", s.URL+"/v2/"+repo+"/manifests/1", strings.NewReader(idx),
			"auth", creds(s), "Content-Type", "application/vnd.oci.image.index.v1+json")
		if r.status != 201 {
			t.Fatalf("sparse index into %s: %d %s", repo, r.status, r.body)
		}
	}

	// An image manifest whose layer is missing is refused.
	cn, _ := amd.ConfigName()
	cfgSize := mustConfigSize(t, amd)
	bad := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":%q,"size":5}]}`, cn, cfgSize, absent)
	r := do(t, "PUT", s.URL+"/v2/docker.io/library/multi/manifests/bad", strings.NewReader(bad),
		"auth", creds(s), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if r.status != 400 {
		t.Fatalf("image with a missing layer: %d %s", r.status, r.body)
	}
}

func mustDigest(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	n, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustConfigSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	b, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

// TestCredentialsCreateRace: processes starting together agree on one file.
func TestCredentialsCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds")
	const n = 8
	got := make(chan registry.Credentials, n)
	for range n {
		go func() {
			c, _, err := registry.LoadOrCreateCredentials(path)
			if err != nil {
				t.Error(err)
			}
			got <- c
		}()
	}
	first := <-got
	for range n - 1 {
		if c := <-got; c != first {
			t.Fatalf("racing creators disagree: %v vs %v", c, first)
		}
	}
	b, _ := os.ReadFile(path)
	if c, err := registry.ParseCredentials(b); err != nil || c != first {
		t.Fatalf("file holds %v (%v), callers got %v", c, err, first)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("stray files left: %v", entries)
	}
}

// TestUploadSurvivesRestart: an upload session started before a restart
// continues after it from where it stopped (the HTTP secret that signs
// upload URLs is persisted), which is what resumable sync relies on.
func TestUploadSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := edgeregistry.Start(t, edgeregistry.Options{DataDir: dir})
	content := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	half := len(content) / 2
	r := do(t, "POST", s.URL+"/v2/docker.io/library/resume/blobs/uploads/", nil, "auth", creds(s))
	if r.status != 202 {
		t.Fatalf("start upload: %d", r.status)
	}
	r = do(t, "PATCH", s.URL+r.header.Get("Location"), strings.NewReader(content[:half]), "auth", creds(s),
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", half-1))
	if r.status != 202 {
		t.Fatalf("first chunk: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	s.Stop()

	s2 := edgeregistry.Start(t, edgeregistry.Options{DataDir: dir})
	// The session reports how far it got.
	st := do(t, "GET", s2.URL+loc, nil)
	if st.status != 204 || st.header.Get("Range") != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("upload status after restart: %d Range %q %s", st.status, st.header.Get("Range"), st.body)
	}
	r = do(t, "PATCH", s2.URL+loc, strings.NewReader(content[half:]), "auth", creds(s2),
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", half, len(content)-1))
	if r.status != 202 {
		t.Fatalf("second chunk after restart: %d %s", r.status, r.body)
	}
	dg := "sha256:" + sha256Hex(content)
	sep := "?"
	if strings.Contains(r.header.Get("Location"), "?") {
		sep = "&"
	}
	r = do(t, "PUT", s2.URL+r.header.Get("Location")+sep+"digest="+dg, nil, "auth", creds(s2))
	if r.status != 201 {
		t.Fatalf("commit after restart: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", s2.URL+"/v2/docker.io/library/resume/blobs/"+dg, nil); r.status != 200 || r.body != content {
		t.Fatalf("blob after resumed upload: %d, %d bytes", r.status, len(r.body))
	}
}

// TestGCKeepsInFlightPulls: a pull that is streaming a kept blob while the
// sweep runs completes with the right bytes.
func TestGCKeepsInFlightPulls(t *testing.T) {
	s := edgeregistry.Start(t, edgeregistry.Options{})
	img, err := random.Image(8<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	push(t, s, "docker.io/library/big:1", img)
	push(t, s, "docker.io/library/other:1", randomImage(t, 1))
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()

	resp, err := http.Get(s.URL + "/v2/library/big/blobs/" + ld.String() + "?ns=docker.io")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// The pull is mid-stream; retention removes another image and sweeps.
	od := mustDigest(t, randomImageFrom(t, s, "docker.io/library/other:1"))
	if r := do(t, "DELETE", s.URL+"/v2/docker.io/library/other/manifests/"+od.String(), nil, "auth", creds(s)); r.status != 202 {
		t.Fatalf("delete: %d", r.status)
	}
	if err := s.GarbageCollect(context.Background(), registry.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustHash(t, string(head)+string(rest)); got != ld {
		t.Fatalf("blob read across a GC hashes to %s, want %s", got, ld)
	}
}

// randomImageFrom reads back the image at ref (relative to the registry).
func randomImageFrom(t testing.TB, s *edgeregistry.Server, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(s.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestTransportStreaming: HEAD carries the size without a body, and closing
// a body early ends the handler instead of blocking it.
func TestTransportStreaming(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reg, err := registry.New(ctx, registry.Options{DataDir: dir, CredentialsFile: filepath.Join(dir, "creds")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	img, err := random.Image(8<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference("edge.invalid/ghcr.io/org/stream:1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithTransport(reg.Transport())); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	size, _ := ls[0].Size()
	c := &http.Client{Transport: reg.Transport()}
	url := "http://edge.invalid/v2/org/stream/blobs/" + ld.String() + "?ns=ghcr.io"

	resp, err := c.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != size {
		t.Fatalf("HEAD: %d, length %d, want %d", resp.StatusCode, resp.ContentLength, size)
	}
	for range 20 { // would pile up blocked handlers if early close leaked
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err = c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || int64(len(b)) != size || mustHash(t, string(b)) != ld {
		t.Fatalf("full GET: %d bytes, %v", len(b), err)
	}
}
