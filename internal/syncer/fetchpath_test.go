package syncer_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// requestLog records the requests sync sends upstream ("METHOD path").
type requestLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
	l.mu.Unlock()
	return l.next.RoundTrip(r)
}

// On a 600 ms link every request that waits for another is time: a first
// pass asks upstream for the bundle index once (a GET by tag: no HEAD, no ping
// of an anonymous registry), for each image manifest once, and for each
// blob once, even a blob two images share.
func TestSyncUpstreamRequests(t *testing.T) {
	log := &requestLog{next: registryclient.NewTransport()}
	s := newSite(t, nil, func(o *syncer.Options) { o.UpstreamTransport = log })
	rev := s.commit(map[string]string{"app.yaml": "v1"})
	base := testimage.Image(t, "linux/amd64", 2, 64<<10)
	extra := testimage.Image(t, "linux/amd64", 1, 64<<10)
	ls, _ := extra.Layers()
	derived, err := mutate.AppendLayers(base, ls...)
	if err != nil {
		t.Fatal(err)
	}
	pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/base:v1": base, "ghcr.io/org/derived:v1": derived})
	if res := s.pass(); res.Complete != 1 {
		t.Fatalf("pass: %+v", res)
	}
	// No delta index: the site holds nothing of the repository that a
	// delta could start from (TestDeltaIndexReadBesideBundleIndex reads
	// one).
	want := map[string]int{"GET /v2/" + s.bundles + "/manifests/" + rev: 1}
	for _, img := range []v1.Image{base, derived} {
		d, _ := img.Digest()
		want["GET /v2/"+s.bundles+"/manifests/"+d.String()] = 1
		cfg, _ := img.ConfigName()
		want["GET /v2/"+s.bundles+"/blobs/"+cfg.String()] = 1
		layers, _ := img.Layers()
		for _, l := range layers {
			h, _ := l.Digest()
			want["GET /v2/"+s.bundles+"/blobs/"+h.String()] = 1
		}
	}
	got := map[string]int{}
	for _, r := range log.reqs {
		got[r]++
	}
	for r, n := range got {
		if want[r] != n {
			t.Errorf("%s sent %d times, want %d", r, n, want[r])
		}
	}
	for r := range want {
		if got[r] == 0 {
			t.Errorf("%s never sent", r)
		}
	}
	if t.Failed() {
		t.Logf("requests:\n%s", strings.Join(log.reqs, "\n"))
	}
}

// Passes reuse the upstream client while its credentials stay the same:
// with basic auth, the ping that finds the scheme (GET /v2/) is paid by
// the first pass only; new credentials get a new client.
func TestSyncReusesUpstreamClient(t *testing.T) {
	authed := regserver.Start(t, regserver.Options{Auth: true})
	dir := t.TempDir()
	userFile, passFile := filepath.Join(dir, "user"), filepath.Join(dir, "pass")
	for p, v := range map[string]string{userFile: authed.User, passFile: authed.Password} {
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log := &requestLog{next: registryclient.NewTransport()}
	s := newSite(t, func(c *config.Config) {
		c.Repositories[0].Bundles = authed.Repo("fleet/apps-bundles")
		c.UpstreamRegistries = map[string]config.UpstreamRegistry{authed.Addr: {Insecure: true, UsernameFile: userFile, PasswordFile: passFile}}
	}, func(o *syncer.Options) { o.UpstreamTransport = log })
	push := func(rev string) {
		img := testimage.Image(t, "linux/amd64", 1, 16<<10)
		auth := remote.WithAuth(&authn.Basic{Username: authed.User, Password: authed.Password})
		d, _ := img.Digest()
		ref, _ := name.NewDigest(authed.Repo("fleet/apps-bundles")+"@"+d.String(), name.Insecure)
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatal(err)
		}
		r, _ := imageref.Parse("ghcr.io/org/app:" + rev[:8])
		mt, _ := img.MediaType()
		size, _ := img.Size()
		raw, desc, err := bundle.Build(bundle.Bundle{Revision: rev, Created: time.Now(), Images: []bundle.Image{{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: d}}}})
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag(authed.Repo("fleet/apps-bundles")+":"+rev, name.Insecure)
		if err := remote.Put(tag, rawManifest{raw, desc.MediaType}, auth); err != nil {
			t.Fatal(err)
		}
	}
	pings := func() int {
		log.mu.Lock()
		defer log.mu.Unlock()
		n := 0
		for _, r := range log.reqs {
			if r == "GET /v2/" {
				n++
			}
		}
		return n
	}
	rev1 := s.commit(map[string]string{"app.yaml": "v1"})
	push(rev1)
	if res := s.pass(); res.Complete != 1 {
		t.Fatalf("pass 1: %+v", res)
	}
	first := pings() // go-containerregistry's ping (https, then http when insecure)
	if first == 0 {
		t.Fatal("no ping: the test cannot see reuse")
	}
	rev2 := s.commit(map[string]string{"app.yaml": "v2"})
	push(rev2)
	if res := s.pass(); res.Complete != 2 || !s.check(rev2).Complete() {
		t.Fatalf("pass 2: %+v", res)
	}
	if n := pings(); n != first {
		t.Fatalf("the second pass pinged %d more times, want 0:\n%s", n-first, strings.Join(log.reqs, "\n"))
	}
	// Rotated credentials (the same here, with a trailing space the
	// registry refuses): a new client, which pings again and fails.
	if err := os.WriteFile(passFile, []byte(authed.Password+" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rev3 := s.commit(map[string]string{"app.yaml": "v3"})
	push(rev3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.sync.Pass(ctx); err == nil {
		t.Fatal("a pass with wrong credentials succeeded: the old client was reused")
	}
	if n := pings(); n == first {
		t.Fatal("no ping after the credentials changed: the old client was reused")
	}
}
