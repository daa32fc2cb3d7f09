package syncer_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/syncer"
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

// On a 600 ms link every request that waits for another is time: a pass
// asks upstream for the bundle index once (a GET by tag: no HEAD, no ping
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
