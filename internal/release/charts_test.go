package release

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
)

func mustRef(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The same chart found by two apps is one entry; two different charts
// under one reference are bad input.
func TestListImagesCharts(t *testing.T) {
	web := Chart{Info: bundle.Chart{RepoURL: "https://charts.example.com", Name: "web", Version: "1.0.0"},
		Ref: mustRef(t, "charts.example.com/web:1.0.0"), Content: &Content{Manifest: []byte(`{"a":1}`)}}
	other := web
	other.Content = &Content{Manifest: []byte(`{"a":2}`)}
	viaHTTP := web
	viaHTTP.Info.RepoURL = "http://charts.example.com"
	for _, tt := range []struct {
		name  string
		apps  [][]Chart
		want  int
		error string
	}{
		{"one chart, two apps", [][]Chart{{web}, {web}}, 1, ""},
		{"different content under one reference", [][]Chart{{web}, {other}}, 0, "two different charts"},
		{"another repository URL under one reference", [][]Chart{{web}, {viaHTTP}}, 0, "http://charts.example.com"},
		{"charts without images are enough", [][]Chart{{web}}, 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{}
			for range tt.apps {
				cfg.Apps = append(cfg.Apps, AppSpec{Path: "x"})
			}
			i := 0
			o := Options{Lister: func(context.Context, string, AppSpec) (Found, error) {
				i++
				return Found{Charts: tt.apps[i-1]}, nil
			}}
			_, got, err := listImages(context.Background(), o, "", cfg, nil)
			if tt.error != "" {
				if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("err %v, want bad input naming %q", err, tt.error)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("charts %d, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

// The memory source serves what it holds, from any offset, and nothing else.
func TestMemorySource(t *testing.T) {
	s, err := newMemorySource(&Content{Manifest: []byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), Blobs: [][]byte{[]byte("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, _ := s.Resolve(ctx, "x")
	if d.MediaType != "application/vnd.oci.image.manifest.v1+json" || d.Size != 58 {
		t.Errorf("descriptor %+v", d)
	}
	bd := d
	bd.Digest, _, _ = sha256Hash([]byte("hello"))
	rc, err := s.OpenBlob(ctx, bd, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if string(got) != "llo" {
		t.Errorf("from offset 2: %q", got)
	}
	if _, err := s.OpenBlob(ctx, d, 0); err == nil {
		t.Error("a blob it does not hold was served")
	}
	if _, err := s.OpenBlob(ctx, bd, 6); err == nil {
		t.Error("an offset past the end was served")
	}
}

func sha256Hash(b []byte) (v1.Hash, int64, error) { return v1.SHA256(bytes.NewReader(b)) }
