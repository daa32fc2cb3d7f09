package edge_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/testutil/browser"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestLinkForecastInBrowser: a daemon whose only window opens hours from
// now and whose daily budget is smaller than the bundle. The page shows
// the window closed and the next one; a "sync now" through the API (with
// the token) moves the budget's worth and stops; the page then shows the
// budget spent and when the revision will be complete, without a reload,
// and /metrics and /api/v1/status say the same.
func TestLinkForecastInBrowser(t *testing.T) {
	tab := browser.Start(t)
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	apps := git.CreateRepo(t, "fleet/apps")
	rev := apps.Commit("main", map[string]string{"README": "apps"})
	pushBundle(t, up.Repo("fleet/apps-bundles"), rev, map[string]v1.Image{
		"ghcr.io/org/app:stable": testimage.Image(t, "linux/amd64", 3, 256<<10),
	})
	// The budget day must not roll over while the test runs: the link's
	// zone is one where it is not yet 19:00 (UTC, or UTC-12 late in the
	// UTC day), and the window is written in that zone.
	zone := "UTC"
	if time.Now().UTC().Hour() >= 19 {
		zone = "Etc/GMT+12"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(loc)
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Repositories: []config.Repository{{URL: git.URL("fleet/apps"), Bundles: up.Repo("fleet/apps-bundles"), Track: []string{"refs/heads/main"},
			KeepRevisions: 1, PollInterval: config.Duration{Duration: time.Second}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}},
		Link: config.Link{TimeZone: zone, MaxBandwidth: "4MB/s", Budget: &config.Budget{PerDay: "300KB"},
			Windows: []config.Window{{From: now.Add(3 * time.Hour).Format("15:04"), To: now.Add(4 * time.Hour).Format("15:04")}}},
	}
	d := edged.Start(t, cfg)
	appsID, _ := imageref.RepoID(git.URL("fleet/apps"))
	linkText := `(document.getElementById("link")?.innerText ?? "")`

	run(t, tab, 30*time.Second, chromedp.Navigate(d.URL+"/"))
	run(t, tab, 5*time.Second, chromedp.Evaluate[chromedp.Void]("window.notReloaded = true"))
	waitFor(t, tab, "the window closed and the revision waiting", fmt.Sprintf(
		`%s.includes("window closed") && %s.includes("Next window") && %s.includes("waiting")`, linkText, linkText, sectionText(appsID)))
	if text := evaluate[string](t, tab, linkText); !strings.Contains(text, "Budget per day") || !strings.Contains(text, "0 B used") {
		t.Errorf("link section before sync now:\n%s", text)
	}
	// The bundle index was never read: no ETA, but when its size will be
	// known, on the page, in the API and in /metrics.
	waitFor(t, tab, "the unknown size and when it will be known", fmt.Sprintf(
		`%s.includes("size unknown until its bundle index is read at the next window")`, sectionText(appsID)))
	var before edge.Status
	getJSON(t, d.URL+"/api/v1/status", &before)
	if rv := before.Repos[0].Revisions[0]; rv.CompleteBy != nil || rv.SizeKnownAt == nil || before.Link.NextWindow == nil || !rv.SizeKnownAt.Equal(*before.Link.NextWindow) {
		t.Errorf("before the index is read: completeBy %v, sizeKnownAt %v, next window %v; want no ETA and the size known at the next window", rv.CompleteBy, rv.SizeKnownAt, before.Link.NextWindow)
	} else if text := evaluate[string](t, tab, sectionText(appsID)); !strings.Contains(text, rv.SizeKnownAt.Format("Mon 02 Jan 15:04")) {
		t.Errorf("the page does not say when the size will be known (%v):\n%s", rv.SizeKnownAt, text)
	}
	if m := metricsText(t, d.URL); !strings.Contains(m, fmt.Sprintf(`ballast_sync_revision_size_known_at_timestamp_seconds{repo=%q,revision=%q} %s`, appsID, rev,
		strconv.FormatFloat(float64(before.Link.NextWindow.Unix()), 'e', -1, 64))) {
		t.Errorf("/metrics lacks when the size will be known")
	}

	// Sync now without the token: refused; with it: accepted.
	if code := postSyncNow(t, d.URL, "", false); code != http.StatusUnauthorized {
		t.Fatalf("sync now without a token: %d", code)
	}
	if code := postSyncNow(t, d.URL, cfg.APITokenFile(), false); code != http.StatusAccepted {
		t.Fatalf("sync now: %d", code)
	}
	waitFor(t, tab, "the budget spent and a forecast", fmt.Sprintf(
		`%s.includes("0 B left") && %s.includes("complete by")`, linkText, sectionText(appsID)))
	text := evaluate[string](t, tab, sectionText(appsID))
	if !strings.Contains(text, "of ") || !strings.Contains(text, rev[:7]) {
		t.Errorf("apps section after sync now:\n%s", text)
	}
	if !evaluate[bool](t, tab, "window.notReloaded === true") {
		t.Error("the page reloaded instead of refreshing in place")
	}

	// The API: budget used, the forecast after the window opens.
	var st edge.Status
	getJSON(t, d.URL+"/api/v1/status", &st)
	if len(st.Link.Budget) != 1 || st.Link.Budget[0].Used < 250_000 || st.Link.Budget[0].Used > 300_000 || st.Link.Budget[0].Left != 300_000-st.Link.Budget[0].Used {
		t.Errorf("budget in the API: %+v", st.Link.Budget)
	}
	rv := st.Repos[0].Revisions[0]
	if rv.CompleteBy == nil || st.Link.NextWindow == nil || rv.CompleteBy.Before(*st.Link.NextWindow) {
		t.Errorf("forecast %v, next window %v: the revision cannot complete before a window opens and the budget resets", rv.CompleteBy, st.Link.NextWindow)
	}
	// /metrics: the same figures.
	if rv.SizeKnownAt != nil || rv.ForecastNote != "" {
		t.Errorf("after the index was read: sizeKnownAt %v, note %q", rv.SizeKnownAt, rv.ForecastNote)
	}
	body := metricsText(t, d.URL)
	for _, want := range []string{
		fmt.Sprintf(`ballast_link_budget_used_bytes{period="day"} %d`, st.Link.Budget[0].Used),
		`ballast_link_budget_left_bytes{period="day"}`,
		fmt.Sprintf("ballast_link_next_window_start_timestamp_seconds %s", strconv.FormatFloat(float64(st.Link.NextWindow.Unix()), 'e', -1, 64)),
		fmt.Sprintf(`ballast_sync_revision_eta_seconds{repo=%q,revision=%q}`, appsID, rev),
		"ballast_link_window_open 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	tab.Screenshot(t, "status-page-link.png")
	if p := tab.Problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func postSyncNow(t *testing.T, base, tokenFile string, ignoreBudget bool) int {
	t.Helper()
	body, _ := json.Marshal(edge.SyncNowRequest{IgnoreBudget: ignoreBudget})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/sync/now", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if tokenFile != "" {
		tok, err := apiauth.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		tok.SetHeader(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
