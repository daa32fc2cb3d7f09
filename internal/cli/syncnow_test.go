package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
)

// closedWindow is a window that opens three hours from now (UTC) for an
// hour: closed while the test runs.
func closedWindow() config.Window {
	now := time.Now().UTC()
	return config.Window{From: now.Add(3 * time.Hour).Format("15:04"), To: now.Add(4 * time.Hour).Format("15:04")}
}

// `ballast sync --now` asks the running daemon (real, in process) for a
// pass outside the window, with the API token; without it the daemon
// refuses and the command says so (exit 1).
func TestSyncNowTalksToTheDaemon(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir(), Link: config.Link{Windows: []config.Window{closedWindow()}, Budget: &config.Budget{PerDay: "1GB"}}}
	d := edged.Start(t, cfg)
	if d.Sync.Status().Link.Open {
		t.Fatal("the window is open")
	}
	out, errOut, code := runCLI(t, "sync", "--now", "--edge", d.URL, "--api-token-file", cfg.APITokenFile())
	if code != 0 || !strings.Contains(out, "accepted") || !strings.Contains(out, "budget per day") {
		t.Fatalf("sync --now: exit %d\n%s\n%s", code, out, errOut)
	}
	wrong := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(wrong, []byte(strings.Repeat("x", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "sync", "--now", "--edge", d.URL, "--api-token-file", wrong)
	if code != 1 || !strings.Contains(errOut, "refused sync now") {
		t.Fatalf("wrong token: exit %d, %s", code, errOut)
	}
	_, errOut, code = runCLI(t, "sync", "--now", "--edge", "ftp://x", "--api-token-file", wrong)
	if code != 2 {
		t.Fatalf("bad --edge: exit %d, %s", code, errOut)
	}
	if _, _, code := runCLI(t, "sync", "--once", "--ignore-budget", "--config", "x"); code != 2 {
		t.Fatalf("--ignore-budget without --now: exit %d", code)
	}
	if _, _, code := runCLI(t, "sync", "--once", "--now"); code != 2 {
		t.Fatalf("--once --now: exit %d", code)
	}
	if _, errOut, code := runCLI(t, "sync", "--once", "--config", "x", "--revision", "main"); code != 2 || !strings.Contains(errOut, `--revision "main"`) {
		t.Fatalf("--revision main: exit %d, %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "sync", "--now", "--edge", "http://127.0.0.1:1", "--revision", strings.Repeat("a", 40)); code != 2 || !strings.Contains(errOut, "--revision goes with --once") {
		t.Fatalf("--now --revision: exit %d, %s", code, errOut)
	}
}

// Bad link settings are exit 2 and the message names the field.
func TestLinkConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ link, field string }{
		{"windows: [{days: [mon-fry], from: '22:00', to: '06:00'}]", "link.windows[0].days"},
		{"windows: [{from: '25:00', to: '06:00'}]", "link.windows[0].from"},
		{"windows: [{from: '22:00', to: '06:00', timeZone: Europe/Osl}]", "link.windows[0].timeZone"},
		{"timeZone: Nowhere/City", "link.timeZone"},
		{"windows: [{schedule: '0 25 * * *', duration: 6h}]", "link.windows[0].schedule"},
		{"windows: [{schedule: '0 22 * * *', duration: 6 hours}]", "link.windows[0].duration"},
		{"maxBandwidth: 2 MB", "link.maxBandwidth"},
		{"windows: [{from: '22:00', to: '06:00', maxBandwidth: 1mbps}]", "link.windows[0].maxBandwidth"},
		{"budget: {perMonth: 3 GB per month}", "link.budget.perMonth"},
	} {
		p := filepath.Join(dir, "edge.yaml")
		if err := os.WriteFile(p, []byte("dataDir: /x\nlink:\n  "+tc.link+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"edge", "--config", p}, {"sync", "--once", "--config", p}} {
			if _, errOut, code := runCLI(t, args...); code != 2 || !strings.Contains(errOut, tc.field) {
				t.Errorf("%s: %v: exit %d, stderr %q; want 2 naming %s", tc.link, args[0], code, errOut, tc.field)
			}
		}
	}
}
