package lfs_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

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
