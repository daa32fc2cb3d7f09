package edge_test

import (
	"context"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/testutil/browser"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// attackerPage is a web page from another origin that an operator opens:
// it tries an auto-submitted text/plain form (a "simple" cross-origin
// request, no preflight), a no-cors fetch, and a JSON fetch with a guessed
// token (preflighted) against the daemon's state-changing routes.
var attackerPage = template.Must(template.New("").Parse(`<!doctype html>
<form id="f" method="POST" action="{{.Edge}}/api/v1/verifications" enctype="text/plain" target="sink">
<input name='{"repo":"{{.Repo}}","revision":"{{.Rev}}","allowed":true,"reason":"forged by a page","x":"' value='"}'>
</form>
<iframe name="sink"></iframe>
<script>
window.tries = 0;
const done = () => { window.tries++; };
fetch("{{.Edge}}/api/v1/activate", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
  body: JSON.stringify({repo: "{{.Repo}}", revision: "{{.Rev}}"})}).then(done, done);
fetch("{{.Edge}}/api/v1/activate", {method: "POST", headers: {"Content-Type": "application/json", "Authorization": "Bearer guessed"},
  body: JSON.stringify({repo: "{{.Repo}}", revision: "{{.Rev}}"})}).then(done, done);
document.getElementById("f").submit();
</script>`))

// TestCrossOriginPageCannotChangeState opens a page served from another
// loopback origin in headless Chromium; the page drives the real daemon's
// state-changing routes as any web page could. The daemon must see those
// requests (its log says so: the test cannot pass because nothing was
// sent) and refuse every one; no verification is recorded.
func TestCrossOriginPageCannotChangeState(t *testing.T) {
	tab := browser.Start(t)
	gitserver.RequireGit(t)
	up := gitserver.New(t)
	up.CreateRepo(t, "fleet/apps").CommitN("main", 1)
	cfg, err := config.Parse([]byte("dataDir: " + t.TempDir() + "\nlisten: {http: '127.0.0.1:0', registry: '127.0.0.1:0'}\n" +
		"repositories:\n  - url: " + up.URL("fleet/apps") + "\n    pollInterval: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	d, err := edge.New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	<-d.Started()
	edgeURL := "http://" + d.Addr("http").String()

	// The attacker's origin: another loopback address.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = attackerPage.Execute(w, map[string]string{"Edge": edgeURL, "Repo": up.URL("fleet/apps"), "Rev": strings.Repeat("a", 40)})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	run(t, tab, 30*time.Second, chromedp.Navigate("http://"+ln.Addr().String()+"/"))
	waitFor(t, tab, "both fetches settled", "window.tries === 2")
	// Three requests reach the daemon: the form post, the no-cors fetch,
	// and the preflight of the JSON fetch (the JSON POST itself is never
	// sent: the preflight fails).
	deadline := time.Now().Add(time.Minute)
	for strings.Count(logs.String(), "API request refused") < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	refused := strings.Count(logs.String(), "API request refused")
	if refused < 3 {
		t.Fatalf("the daemon saw %d of the page's 3 requests:\n%s", refused, logs.String())
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "API request refused") && !strings.Contains(l, "status=403") {
			t.Errorf("refused, but not as cross-origin (403): %s", l)
		}
	}
	if v := d.Verifications(); len(v) != 0 {
		t.Fatalf("a cross-origin page recorded a verification: %+v", v)
	}
}
