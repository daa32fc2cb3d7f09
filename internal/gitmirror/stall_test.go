package gitmirror

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestStalledBodyGetsAnAnswer: an upload-pack request whose body stalls is
// answered once the body deadline passes, and one refused before its body
// is read (every reading slot taken) is answered at once; neither keeps the
// connection open waiting for the rest of the body (net/http drains an
// unread body before it writes the response, with no deadline once the
// handler lifted it).
func TestStalledBodyGetsAnAnswer(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { bodyReadTimeout = old })
	m, err := New(Options{
		DataDir:   t.TempDir(),
		Upstreams: []Upstream{{URL: "http://127.0.0.1:1/a/b.git", PollInterval: time.Hour}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.GitHandler())
	t.Cleanup(srv.Close)
	stalled := func(t *testing.T, want int) {
		t.Helper()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("POST /git/127.0.0.1:1/a/b.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n" +
			"Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 1000\r\n\r\n0032"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body within 5 s: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("status %d, want %d", resp.StatusCode, want)
		}
	}
	t.Run("deadline", func(t *testing.T) { stalled(t, http.StatusBadRequest) })
	t.Run("busy", func(t *testing.T) {
		for range cap(m.readers) {
			m.readers <- struct{}{}
		}
		defer func() {
			for range cap(m.readers) {
				<-m.readers
			}
		}()
		stalled(t, http.StatusServiceUnavailable)
	})
}
