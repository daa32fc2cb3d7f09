package lfs_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
)

// TestBatchHostNotAmplified: the batch response repeats the base URL,
// built from the request's Host, once per object. A Host of hundreds of
// KiB (net/http accepts headers up to 1 MiB) and 1,000 copies of one
// object the mirror holds must not make a response of hundreds of MiB.
func TestBatchHostNotAmplified(t *testing.T) {
	s := newSite(t)
	s.commitLFS(nil, map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	oid := lfsserver.ObjectOf([]byte("kind: ConfigMap\n")).OID
	objs := make([]string, 1000)
	for i := range objs {
		objs[i] = `{"oid":"` + oid + `","size":16}`
	}
	body := `{"operation":"download","objects":[` + strings.Join(objs, ",") + `]}`
	host := strings.Repeat("a", 512<<10)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /git/%s.git/info/lfs/objects/batch HTTP/1.1\r\nHost: %s\r\nContent-Type: application/vnd.git-lfs+json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		s.id, host, len(body), body)
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	n, _ := io.Copy(io.Discard, br)
	t.Logf("status %q, %d bytes", strings.TrimSpace(status), n)
	if !strings.Contains(status, " 400 ") {
		t.Errorf("status %q, want 400 for an oversized Host", strings.TrimSpace(status))
	}
	if n > 8<<20 {
		t.Fatalf("batch response of %d bytes for a %d-byte request: the Host header is repeated per object", n, len(body)+len(host))
	}
}

// TestDownloadSlotWaitBounded: clients that ask for an object and stop
// reading hold the download slots; another download waits a bounded time
// and gets 503 with Retry-After instead of hanging for as long as they
// like.
func TestDownloadSlotWaitBounded(t *testing.T) {
	s := newSite(t)
	big := strings.Repeat("kind: ConfigMap\n", 4<<20) // 64 MiB: more than socket buffers hold
	s.commitLFS(nil, map[string]string{"big.yaml": big})
	s.opts = func(o *lfs.Options) { o.MaxConcurrentDownloads, o.SlotWait = 1, 500*time.Millisecond }
	s.start(0)
	if err := s.poll(); err != nil {
		t.Fatal(err)
	}
	url := s.mirrorURL() + "/info/lfs/objects/" + lfsserver.ObjectOf([]byte(big)).OID
	stalled, err := http.Get(url) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Body.Close()
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			t.Errorf("second download: %v (still waiting for a slot?)", err)
			resp = nil
		}
		done <- resp
	}()
	select {
	case resp := <-done:
		if resp == nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("second download: %s (Retry-After %q), want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second download still waiting for a slot after 10 s")
	}
}
