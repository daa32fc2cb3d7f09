package transfer_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// TestResumeAnsweredByAShort200: a server (or a proxy in front of it) that
// answers every ranged request with a 200 that is not the blob (an error
// page, a truncated entity: its Content-Length is not the blob's size)
// refuses the resume; the blob starts over from byte 0, where it answers
// properly, instead of failing every attempt for good.
func TestResumeAnsweredByAShort200(t *testing.T) {
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	upURL, _ := url.Parse(reg.URL)
	idx := testimageIndex(t)
	root := pushIndex(t, strings.TrimPrefix(reg.URL, "http://")+"/r", "v1", idx)
	for _, tc := range []struct {
		name  string
		shape shape
	}{
		{"with a Content-Length", func(w http.ResponseWriter, b []byte, n int64) {
			w.Header().Set("Content-Length", "21")
			w.Write([]byte("<html>oops</html>\n\n\n\n"))
		}},
		{"chunked, ending before the offset", func(w http.ResponseWriter, b []byte, n int64) {
			w.WriteHeader(http.StatusOK)
			w.Write(b[:1000])
			w.(http.Flusher).Flush()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := &shapeServer{up: upURL, cutAt: 300 << 10, cut: map[string]bool{}, shape: tc.shape}
			srv := httptest.NewServer(ss)
			defer srv.Close()
			src := newRemote(t, strings.TrimPrefix(srv.URL, "http://")+"/r")
			dst := must(layout.New(t.TempDir()))
			e := newEngine(t, transfer.WithStagingDir(t.TempDir()))
			if _, err := e.Copy(context.Background(), transfer.Job{Src: src, Dst: dst, Root: root, Tags: []string{"v1"}}); err != nil {
				t.Fatalf("copy wedged: %v", err)
			}
			verifyLayout(t, dst, idx)
			if ss.mu.Lock(); len(ss.ranges) == 0 {
				t.Error("no resume was asked for: the test proves nothing")
			}
			ss.mu.Unlock()
		})
	}
}

func testimageIndex(t *testing.T) v1.ImageIndex {
	return testimage.Index(t, []string{"linux/amd64"}, 2, 1<<20)
}
