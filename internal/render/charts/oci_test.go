package charts_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// pushChart packages c and pushes it to addr/charts/<name>:<version> with
// Helm's registry client, as `helm push` does.
func pushChart(t *testing.T, addr string, c helmrepo.Chart) string {
	t.Helper()
	p := helmrepo.Package(t, t.TempDir(), c)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	ref := addr + "/charts/" + c.Name + ":" + c.Version // Helm writes + as _ in the tag
	if _, err := client.Push(data, ref); err != nil {
		t.Fatalf("helm push %s: %v", ref, err)
	}
	return sha(t, p)
}

func TestFetchOCI(t *testing.T) {
	reg := regserver.Start(t, regserver.Options{})
	digests := map[string]string{}
	for _, v := range []string{"1.2.0", "1.2.5", "1.3.0", "2.0.0-rc.1", "1.2.6+build.7"} {
		digests[v] = pushChart(t, reg.Addr, demo(v, "example.com/demo:"+v))
	}
	for _, tt := range []struct {
		repoURL, rev, want string
	}{
		{"oci://" + reg.Addr + "/charts", "1.2.0", "1.2.0"},
		{reg.Addr + "/charts", "1.2.0", "1.2.0"}, // no scheme: OCI, as Argo CD with enableOCI
		{"oci://" + reg.Addr + "/charts/", "1.2.x", "1.2.6+build.7"},
		{"oci://" + reg.Addr + "/charts", "<1.2.6", "1.2.5"},
		{"oci://" + reg.Addr + "/charts", "*", "1.3.0"},
		{"oci://" + reg.Addr + "/charts", "", "1.3.0"},
		{"oci://" + reg.Addr + "/charts", "1.2.6+build.7", "1.2.6+build.7"},
	} {
		t.Run(tt.repoURL+" "+tt.rev, func(t *testing.T) {
			cache := t.TempDir()
			f := &charts.Fetcher{CacheDir: cache}
			ref := charts.Ref{RepoURL: tt.repoURL, Chart: "demo", TargetRevision: tt.rev}
			chrt, res, err := f.Fetch(context.Background(), ref)
			if err != nil {
				t.Fatal(err)
			}
			if res.Version != tt.want || chrt.Metadata.Version != tt.want {
				t.Fatalf("resolved %s (chart %s), want %s", res.Version, chrt.Metadata.Version, tt.want)
			}
			if res.Digest != digests[tt.want] {
				t.Errorf("digest %s, want %s (the pushed archive)", res.Digest, digests[tt.want])
			}
			if !strings.HasPrefix(res.URL, "oci://"+reg.Addr+"/charts/demo:") {
				t.Errorf("url %q", res.URL)
			}
			// Again, exact, from the cache with the registry unused.
			ref.TargetRevision = tt.want
			_, again, err := (&charts.Fetcher{CacheDir: cache, Client: refuseAll()}).Fetch(context.Background(), ref)
			if err != nil || !again.Cached || again.Digest != res.Digest {
				t.Errorf("from the cache: %+v, %v", again, err)
			}
		})
	}
}

func TestFetchOCIBadInput(t *testing.T) {
	reg := regserver.Start(t, regserver.Options{})
	pushChart(t, reg.Addr, demo("1.0.0", "example.com/demo:1.0.0"))
	for _, tt := range []struct {
		name string
		ref  charts.Ref
		want []string
	}{
		{"unknown chart", charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "nope", TargetRevision: "1.0.0"},
			[]string{reg.Addr + "/charts/nope:1.0.0"}},
		{"unknown chart, range", charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "nope", TargetRevision: "1.x"},
			[]string{reg.Addr + "/charts/nope"}},
		{"unknown version", charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "demo", TargetRevision: "7.7.7"},
			[]string{reg.Addr + "/charts/demo:7.7.7"}},
		{"unresolvable range", charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "demo", TargetRevision: "~3.1"},
			[]string{reg.Addr + "/charts/demo", `no tag matches "~3.1"`}},
		{"not a range", charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "demo", TargetRevision: "latest please"},
			[]string{"neither a version nor a range"}},
		{"bad repository", charts.Ref{RepoURL: "oci://" + reg.Addr + "/Charts!", Chart: "demo", TargetRevision: "1.0.0"},
			[]string{"not an OCI repository"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := (&charts.Fetcher{}).Fetch(context.Background(), tt.ref)
			if err == nil {
				t.Fatal("fetched, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if errors.Is(err, charts.ErrUnavailable) {
				t.Errorf("bad input classed as unavailable: %v", err)
			}
		})
	}
	t.Run("an image, not a chart", func(t *testing.T) {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := name.NewTag(reg.Addr + "/charts/notachart:1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		_, _, err = (&charts.Fetcher{}).Fetch(context.Background(),
			charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "notachart", TargetRevision: "1.0.0"})
		if err == nil || !strings.Contains(err.Error(), "not a Helm chart") || !strings.Contains(err.Error(), "notachart:1.0.0") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("registry down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		for _, rev := range []string{"1.0.0", "1.x"} {
			_, _, err = (&charts.Fetcher{}).Fetch(context.Background(),
				charts.Ref{RepoURL: "oci://" + addr + "/charts", Chart: "demo", TargetRevision: rev})
			if !errors.Is(err, charts.ErrUnavailable) {
				t.Errorf("%s: err %v, want ErrUnavailable", rev, err)
			}
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		_, _, err := (&charts.Fetcher{MaxChartBytes: 100}).Fetch(context.Background(),
			charts.Ref{RepoURL: "oci://" + reg.Addr + "/charts", Chart: "demo", TargetRevision: "1.0.0"})
		if err == nil || !strings.Contains(err.Error(), "larger than the limit of 100 bytes") {
			t.Errorf("err %v", err)
		}
	})
}

// refuseAll is a client whose every request fails: proof that no network
// was used.
func refuseAll() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("network used: " + r.URL.String())
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
