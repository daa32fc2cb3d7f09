package edge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHostAllowed(t *testing.T) {
	g := &apiGuard{hosts: map[string]bool{"edge.ship.example": true}, log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:8080", true}, {"[::1]:8080", true}, {"10.1.2.3", true}, {"[fe80::1%25eth0]:8080", true},
		{"localhost:8080", true}, {"LOCALHOST.", true}, {"edge:8080", true},
		{"ballast-edge.ballast.svc:8080", true}, {"ballast-edge.ballast.svc.cluster.local:8080", true},
		{"Edge.Ship.Example:8080", true},
		{"", false}, {"evil.example.com:8080", false}, {"127.0.0.1.nip.io:8080", false},
		{"svc.evil.example", false}, {"x.svc.evil.example:80", false}, {"localhost.evil.example", false},
	} {
		if got := g.hostAllowed(tc.host); got != tc.ok {
			t.Errorf("hostAllowed(%q) = %v, want %v", tc.host, got, tc.ok)
		}
	}
}

// FuzzDecodeJSON: an accepted body is exactly one valid JSON object with
// known fields, nothing after it.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"repo":"https://h/a","revision":"` + string(bytes.Repeat([]byte("a"), 40)) + `"}`))
	f.Add([]byte(`{"repo":"x"}{"repo":"y"}`))
	f.Add([]byte(`{"repo":"x"} garbage`))
	f.Add([]byte(`{"repo":"x"}   ` + "\n"))
	f.Add([]byte(`{"force":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/activate", bytes.NewReader(b))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxAPIBody)
		var req ActivateRequest
		code, err := decodeJSON(r, &req)
		if err != nil {
			if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
				t.Fatalf("refused with %d", code)
			}
			return
		}
		if !json.Valid(b) || len(b) > maxAPIBody {
			t.Fatalf("accepted %q", b)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) == nil {
			for k := range m {
				if k != "repo" && k != "revision" && !bytes.EqualFold([]byte(k), []byte("repo")) && !bytes.EqualFold([]byte(k), []byte("revision")) {
					t.Fatalf("accepted unknown field %q in %q", k, b)
				}
			}
		}
	})
}
