package registry

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRefusedWriteAnsweredAtOnce: an anonymous write whose body stalls gets
// its 401 at once and the connection is closed: net/http would otherwise
// drain the unread body before answering, and the client would hold the
// connection until the listener's body deadline.
func TestRefusedWriteAnsweredAtOnce(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("write reached the registry") })
	srv := httptest.NewServer(authenticate(Credentials{Username: "u", Password: "p"}, next))
	t.Cleanup(srv.Close)
	for _, auth := range []string{"", "Authorization: Basic dTp3cm9uZw==\r\n"} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() }) // before srv.Close, which waits for it
		if _, err := io.WriteString(c, "POST /v2/foo/blobs/uploads/ HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 100\r\n\r\nab"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer within 5 s to a refused write whose body stalls (auth %q): %v", auth, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Errorf("status %d, close %v; want 401 and the connection closed", resp.StatusCode, resp.Close)
		}
		c.Close()
	}
}
