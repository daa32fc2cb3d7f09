package edge

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/syncer"
)

const (
	shaA = "aaaaaaa1111111111111111111111111111111111"
	shaB = "bbbbbbb2222222222222222222222222222222222"
	shaC = "ccccccc3333333333333333333333333333333333"
	shaD = "ddddddd4444444444444444444444444444444444"
)

// sampleStatus is a daemon with one healthy repository (a complete, a
// syncing and a no-bundle revision) and one offline repository whose
// sync failed, with an error that tries to inject markup.
func sampleStatus() Status {
	now := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	ok, fail, lost := now.Add(-12*time.Second), now.Add(-20*time.Second), now.Add(-2*time.Hour)
	return Status{
		Version: "v0.1.0", Now: now, Platforms: []string{"linux/amd64", "linux/arm64"},
		DiskBytes: 3 << 30, LinkBytesTotal: 1536 << 20, Syncing: true,
		Repos: []RepoView{{
			ID: "git.example.com/fleet/apps", URL: "https://git.example.com/fleet/apps.git", MirrorPath: "/git/git.example.com/fleet/apps.git",
			Bundles: "registry.example.com/fleet/apps-bundles", Ready: true, LastAttempt: &ok, LastSuccess: &ok,
			Tracked: []TrackedRef{{Name: "refs/heads/main", UpstreamTip: shaB, Ready: shaA}},
			Revisions: []syncer.RevisionStatus{
				{Revision: shaB, Refs: []string{"refs/heads/main"}, Tip: true, State: syncer.StateSyncing, BytesDone: 40 << 20, BytesTotal: 100 << 20, Rate: 256 << 10, ETASeconds: 240},
				{Revision: shaC, Refs: []string{"refs/heads/main"}, State: syncer.StateNoBundle},
				{Revision: shaA, Refs: []string{"refs/heads/main"}, State: syncer.StateComplete, Images: 3, DeltaLayers: 2, DeltaSavedBytes: 9 << 20,
					Charts: []syncer.ChartStatus{{Name: "chart cert-manager 1.15.0 from https://charts.example.com/stable", Ref: "charts.example.com/stable/cert-manager:1.15.0"}}, BytesDone: 80 << 20, BytesTotal: 80 << 20},
			},
		}, {
			ID: "git.example.com/fleet/infra", URL: "https://git.example.com/fleet/infra.git", MirrorPath: "/git/git.example.com/fleet/infra.git",
			LastAttempt: &fail, LastSuccess: &lost, Failures: 4, LastError: `dial tcp: connection refused <script>alert(1)</script>`,
			Tracked: []TrackedRef{{Name: "refs/heads/main", UpstreamTip: shaD}},
			Revisions: []syncer.RevisionStatus{{Revision: shaD, Tip: true, State: syncer.StateFailed, Error: "blob sha256:abcd: digest mismatch"},
				{Revision: shaC, State: syncer.StateUntrusted, Error: "bundle index of ccccccc33333 sha256:ab: not signed by a trusted key"}},
			SyncError: "pass failed",
		}},
		Verifications: []Verification{
			{Repo: "https://git.example.com/fleet/apps.git", Revision: shaB, Allowed: false, Reason: "2 blobs missing at the edge", At: now.Add(-5 * time.Second)},
			{Repo: "https://git.example.com/fleet/apps.git", Revision: shaA, Allowed: true, At: now.Add(-time.Hour)},
		},
	}
}

func TestRenderPage(t *testing.T) {
	var b strings.Builder
	if err := renderPage(&b, sampleStatus(), "n0nce", false); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	apps, infra, _ := strings.Cut(html[strings.Index(html, `id="repo-0"`):], `id="repo-1"`)
	for _, tc := range []struct{ name, in, want string }{
		{"repo id", apps, "git.example.com/fleet/apps"},
		{"online badge", apps, `<span class="badge online">online</span>`},
		{"last contact", apps, "12s ago"},
		{"short sha, full in title", apps, `<span class="sha" title="` + shaB + `">bbbbbbb</span>`},
		{"ref behind", apps, "tip waits for its bundle"},
		{"syncing percent", apps, "syncing 40%"},
		{"progress bar", apps, `<progress max="100" value="40"`},
		{"rate and ETA", apps, "40.0 MiB of 100.0 MiB · 256.0 KiB/s · ETA 4m 0s"},
		{"no bundle", apps, `<span class="badge no-bundle">no bundle</span>`},
		{"complete", apps, `<span class="badge complete">complete</span>`},
		{"complete size", apps, "80.0 MiB · 3 images"},
		{"delta savings", apps, `<span class="delta">2 layer(s) from deltas, 9.0 MiB saved on the link</span>`},
		{"charts apart from images", apps, `<span class="muted">1 chart(s):</span> <code title="charts.example.com/stable/cert-manager:1.15.0">chart cert-manager 1.15.0 from https://charts.example.com/stable</code>`},
		{"verify blocked", apps, `<span class="badge blocked">blocked</span>`},
		{"verify reason", apps, "2 blobs missing at the edge"},
		{"verify allowed", apps, `<span class="badge allowed">allowed</span>`},
		{"offline badge", infra, `<span class="badge offline">offline</span>`},
		{"failures", infra, "<dd>4</dd>"},
		{"lost contact", infra, "2h ago"},
		{"escaped error", infra, "connection refused &lt;script&gt;alert(1)&lt;/script&gt;"},
		{"failed revision", infra, `<span class="badge failed">failed</span>`},
		{"failed error", infra, "digest mismatch"},
		{"untrusted revision", infra, `<span class="badge untrusted">untrusted</span>`},
		{"untrusted reason", infra, "Refused by the trust policy, nothing of it landed: bundle index of ccccccc33333 sha256:ab: not signed by a trusted key"},
		{"sync error", infra, "pass failed"},
		{"no verify results", infra, "No verify results reported yet."},
		{"disk use", html, "3.0 GiB"},
		{"link bytes", html, "1.5 GiB"},
		{"platforms", html, "linux/amd64, linux/arm64"},
		{"nonce", html, `<script nonce="n0nce">`},
		{"no-JS fallback", html, `<noscript><meta http-equiv="refresh" content="10"></noscript>`},
	} {
		if !strings.Contains(tc.in, tc.want) {
			t.Errorf("%s: page lacks %q", tc.name, tc.want)
		}
	}
	if strings.Contains(html, "<script>alert") {
		t.Error("upstream error text reached the page unescaped")
	}
}

func TestRenderPageEmpty(t *testing.T) {
	var b strings.Builder
	if err := renderPage(&b, Status{Now: time.Now()}, "x", false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "No repositories configured.") {
		t.Error("empty page lacks its message")
	}
}

func TestPageRoute(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir(), Listen: config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := d.router()
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		{"POST", "/", 405, ""},
		{"GET", "/index.html", 404, ""},
		{"GET", "/git/unknown.git/info/refs", 0, ""}, // the mirror's answer, not the page
		{"GET", "//", 404, ""},                       // never a redirect
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if tc.status == 0 && rec.Code < 400 || tc.status != 0 && rec.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
		if tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: content type %q", tc.method, tc.path, rec.Header().Get("Content-Type"))
		}
		if tc.status == 200 {
			csp := rec.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("%s %s: CSP %q", tc.method, tc.path, csp)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD / has a body")
			}
		}
	}
}

func TestHumanFormats(t *testing.T) {
	now := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	for _, tc := range []struct{ got, want string }{
		{humanBytes(0), "0 B"},
		{humanBytes(1023), "1023 B"},
		{humanBytes(1536), "1.5 KiB"},
		{humanBytes(5 << 40), "5.0 TiB"},
		{humanDuration(0), "0s"},
		{humanDuration(59.9), "59s"},
		{humanDuration(125), "2m 5s"},
		{humanDuration(3725), "1h 2m"},
		{ago(nil, now), "never"},
		{ago(at(0), now), "just now"},
		{ago(at(90*time.Second), now), "1m ago"},
		{ago(at(3*time.Hour), now), "3h ago"},
		{ago(at(72*time.Hour), now), "3d ago"},
		{shortSHA(shaA), "aaaaaaa"},
		{shortSHA("abc"), "abc"},
		{percent(syncer.RevisionStatus{State: syncer.StateSyncing, BytesDone: 999, BytesTotal: 1000}), "99"},
		{percent(syncer.RevisionStatus{State: syncer.StateComplete}), "100"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
