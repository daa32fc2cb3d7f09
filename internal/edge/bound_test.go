package edge

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A client that asks for a large response and never reads it is cut once
// a write has blocked for the deadline (500 such clients of the registry
// held 2 GB, for as long as they liked).
func TestWriteDeadlineCutsAStalledReader(t *testing.T) {
	done := make(chan error, 1)
	srv := httptest.NewServer(writeDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for range 64 << 20 / len(buf) {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}), 200*time.Millisecond))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("64 MiB written to a client that reads nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still writing to a client that reads nothing")
	}
}

// The deadline bounds a stalled write, never the time between requests of
// a keep-alive connection, nor a handler that takes long before writing.
func TestWriteDeadlineKeepAlive(t *testing.T) {
	srv := httptest.NewServer(writeDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/write":
			_, _ = w.Write([]byte("x"))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
			w.WriteHeader(http.StatusNoContent)
		}
		// "/": nothing written, net/http sends the header itself
	}), 100*time.Millisecond))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, p := range []string{"/write", "/", "/slow"} {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // past the last write's deadline
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
}

func TestLimitReads(t *testing.T) {
	old := blobSlotWait
	blobSlotWait = 100 * time.Millisecond
	defer func() { blobSlotWait = old }()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := limitReads(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isBlobRead(r) {
			entered <- struct{}{}
			<-release
		}
	}), 1, isBlobRead)
	blob := "/v2/docker.io/library/nginx/blobs/sha256:" + fmt.Sprintf("%064d", 0)
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, blob, nil))
	<-entered
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, blob, http.StatusServiceUnavailable},
		{http.MethodHead, blob, http.StatusOK},
		{http.MethodGet, "/v2/docker.io/library/nginx/manifests/1.27", http.StatusOK},
		{http.MethodGet, "/v2/docker.io/library/nginx/blobs/uploads/abc", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("%s %s with the one slot taken: %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
		if tc.want == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	}
	close(release)
	blobSlotWait = 10 * time.Second // the first download is returning its slot
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, blob, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET blob once the slot is free: %d", rec.Code)
	}
}
