package edge_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/registry"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// startSecured runs the real daemon with one repository and returns it,
// the repository URL and the API token the daemon generated.
func startSecured(t *testing.T) (*edged.Daemon, string, apiauth.Token, *config.Config) {
	t.Helper()
	gitserver.RequireGit(t)
	up := gitserver.New(t)
	up.CreateRepo(t, "fleet/apps").CommitN("main", 1)
	cfg, err := config.Parse([]byte("dataDir: " + t.TempDir() + "\nlisten: {http: '127.0.0.1:0', registry: '127.0.0.1:0'}\nrepositories:\n  - url: " + up.URL("fleet/apps") + "\n    pollInterval: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := edged.Start(t, cfg)
	fi, err := os.Stat(cfg.APITokenFile())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("API token file: %v, %v (want mode 0600)", fi, err)
	}
	tok, err := apiauth.ReadFile(cfg.APITokenFile())
	if err != nil {
		t.Fatal(err)
	}
	return d, up.URL("fleet/apps"), tok, cfg
}

// TestStateChangingRoutesNeedCredential sends what an anonymous client on
// the network, a web page an operator opens, and a DNS-rebinding page would
// send to the real daemon's state-changing routes, and checks each is
// refused with the right status before it changes anything; reads stay
// anonymous.
func TestStateChangingRoutesNeedCredential(t *testing.T) {
	d, repo, tok, _ := startSecured(t)
	rev := strings.Repeat("a", 40)
	verif := `{"repo":"` + repo + `","revision":"` + rev + `","allowed":true,"reason":"forged"}`
	activate := `{"repo":"` + repo + `","revision":"` + rev + `"}`
	const bearer = "Bearer "
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     int
		wantText                 string
	}{
		{"anonymous activate", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json"}, 401, "needs the API token"},
		{"anonymous verification", "POST", "/api/v1/verifications", verif, map[string]string{"Content-Type": "application/json"}, 401, "needs the API token"},
		{"anonymous future route", "POST", "/api/v1/sync", "{}", map[string]string{"Content-Type": "application/json"}, 401, "needs the API token"},
		{"anonymous PUT", "PUT", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json"}, 401, "needs the API token"},
		{"basic auth", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json", "Authorization": "Basic " + tok.Secret()}, 401, "needs the API token"},
		{"wrong token", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json", "Authorization": bearer + strings.Repeat("0", 64)}, 401, "wrong API token"},
		{"text/plain", "POST", "/api/v1/verifications", verif, map[string]string{"Content-Type": "text/plain", "Authorization": bearer + tok.Secret()}, 415, "application/json"},
		{"form post", "POST", "/api/v1/verifications", "a=b", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": bearer + tok.Secret()}, 415, "application/json"},
		{"no content type", "POST", "/api/v1/activate", activate, map[string]string{"Authorization": bearer + tok.Secret()}, 415, "application/json"},
		{"trailing value", "POST", "/api/v1/verifications", verif + `{"x":1}`, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret()}, 400, "data after the JSON value"},
		{"trailing garbage", "POST", "/api/v1/activate", activate + "garbage", map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret()}, 400, "bad request body"},
		{"unknown field", "POST", "/api/v1/activate", `{"repo":"x","revision":"y","force":true}`, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret()}, 400, "unknown field"},
		{"oversized body", "POST", "/api/v1/verifications", `{"repo":"` + strings.Repeat("x", 70<<10) + `"}`, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret()}, 413, "over"},
		{"foreign origin", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret(), "Origin": "http://evil.example"}, 403, "cross-origin"},
		{"null origin", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret(), "Origin": "null"}, 403, "cross-origin"},
		{"cross-site fetch", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret(), "Sec-Fetch-Site": "cross-site"}, 403, "cross-site"},
		{"rebinding host", "POST", "/api/v1/activate", activate, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret(), "Host": "rebind.evil.example:8080", "Origin": "http://rebind.evil.example:8080"}, 403, "not an address of this daemon"},
		{"rebinding host, no origin", "POST", "/api/v1/verifications", verif, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret(), "Host": "attacker.example.com"}, 403, "not an address of this daemon"},
		// Past the guard: the handler's own checks answer.
		{"service host passes", "POST", "/api/v1/activate", `{"repo":"https://nowhere.example/x.git","revision":"` + rev + `"}`, map[string]string{"Content-Type": "application/json; charset=utf-8", "Authorization": bearer + tok.Secret(), "Host": "ballast-edge.ballast.svc:8080"}, 400, "unknown repository"},
		{"same origin passes", "POST", "/api/v1/activate", `{"repo":"https://nowhere.example/x.git","revision":"` + rev + `"}`, map[string]string{"Content-Type": "application/json", "Authorization": bearer + tok.Secret(), "Origin": d.URL}, 400, "unknown repository"},
		{"anonymous status read", "GET", "/api/v1/status", "", nil, 200, `"repos"`},
		{"anonymous verifications read", "GET", "/api/v1/verifications", "", nil, 200, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, d.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.hdr {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !strings.Contains(string(b), tc.wantText) {
				t.Fatalf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.want, tc.wantText)
			}
			if tc.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(b), tok.Secret()) {
				t.Fatal("answer shows the token")
			}
		})
	}
	if v := d.Verifications(); len(v) != 0 {
		t.Fatalf("a refused request recorded a verification: %+v", v)
	}
	// The credential works: a report from the gate is recorded.
	req, _ := http.NewRequest("POST", d.URL+"/api/v1/verifications", strings.NewReader(verif))
	req.Header.Set("Content-Type", "application/json")
	tok.SetHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(d.Verifications()) != 1 {
		t.Fatalf("authorized report: %s, %d recorded", resp.Status, len(d.Verifications()))
	}
	// No anonymous read shows the token.
	for _, p := range []string{"/", "/api/v1/status", "/api/v1/repos", "/api/v1/verifications", "/api/v1/edge", "/metrics"} {
		resp, err := http.Get(d.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), tok.Secret()) {
			t.Errorf("GET %s: %d, shows the token: %v", p, resp.StatusCode, strings.Contains(string(b), tok.Secret()))
		}
	}
}

// TestStalledBodyIsCut: a client that sends part of a request body and
// stalls loses its connection once the body deadline passes, on a
// state-changing route and on a read-only one, instead of holding it for
// ever.
func TestStalledBodyIsCut(t *testing.T) {
	defer edge.SetBodyTimeouts(300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond)()
	d, _, tok, cfg := startSecured(t)
	creds, err := registry.ParseCredentials(mustRead(t, cfg.CredentialsFile()))
	if err != nil {
		t.Fatal(err)
	}
	basic := base64.StdEncoding.EncodeToString([]byte(creds.Username + ":" + creds.Password))
	upload := "POST /v2/ghcr.io/org/app/blobs/uploads/?digest=sha256:" + strings.Repeat("0", 64) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
	httpAddr, regAddr := strings.TrimPrefix(d.URL, "http://"), d.Registry
	for _, tc := range []struct{ name, addr, head string }{
		{"activate", httpAddr, "POST /api/v1/activate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer " + tok.Secret() + "\r\n"},
		{"status with a body", httpAddr, "GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"},
		{"page with a body", httpAddr, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"},
		{"anonymous registry upload", regAddr, upload},
		{"registry upload", regAddr, upload + "Authorization: Basic " + basic + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.head+"Content-Length: 1000\r\n\r\n{\"repo\":"); err != nil {
				t.Fatal(err)
			}
			// Generous: the daemon's deadline is 300 ms; without one, this
			// read would wait for the whole minute and fail.
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_, err = io.Copy(io.Discard, bufio.NewReader(c))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the daemon still holds a connection whose body stalled")
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRefusedRequestAnsweredAtOnce: a state-changing request the guard
// refuses before reading its body (no token, a foreign Origin, a bad Host)
// is answered at once and its connection closed, even when the body stalls:
// net/http would otherwise drain the unread body before answering, holding
// the connection until the listener's body deadline.
func TestRefusedRequestAnsweredAtOnce(t *testing.T) {
	defer edge.SetBodyTimeouts(time.Minute, time.Minute, time.Minute)()
	d, _, tok, _ := startSecured(t)
	for _, tc := range []struct {
		name, head string
		want       int
	}{
		{"no token", "Host: 127.0.0.1\r\nContent-Type: application/json\r\n", http.StatusUnauthorized},
		{"foreign origin", "Host: 127.0.0.1\r\nOrigin: http://evil.example\r\nContent-Type: application/json\r\nAuthorization: Bearer " + tok.Secret() + "\r\n", http.StatusForbidden},
		{"text/plain", "Host: 127.0.0.1\r\nContent-Type: text/plain\r\nAuthorization: Bearer " + tok.Secret() + "\r\n", http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(d.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "POST /api/v1/activate HTTP/1.1\r\n"+tc.head+"Content-Length: 1000\r\n\r\n{\"repo\":"); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer within 5 s to a refused request whose body stalls: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want || !resp.Close {
				t.Errorf("status %d, close %v; want %d and the connection closed", resp.StatusCode, resp.Close, tc.want)
			}
		})
	}
}
