package cli

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/testutil/edged"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// `ballast status` against the real daemon (in process): a repository
// whose tip has no bundle yet, behind a closed window and a daily budget.
// The text names the link's state and next window, the budget, the tracked
// ref's upstream tip and the revision's state; -o json is the daemon's
// document; no daemon is exit 1, bad flags exit 2.
func TestStatusTalksToTheDaemon(t *testing.T) {
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	repo := git.CreateRepo(t, "fleet/apps")
	tip := repo.Commit("main", map[string]string{"app.yaml": "v1"})
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Link:    config.Link{Windows: []config.Window{closedWindow()}, Budget: &config.Budget{PerDay: "1GB"}},
		Repositories: []config.Repository{{URL: git.URL("fleet/apps"), Bundles: "127.0.0.1:1/fleet/apps-bundles",
			Track: []string{"refs/heads/main"}, PollInterval: config.Duration{Duration: time.Second}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{"127.0.0.1:1": {Insecure: true}},
	}
	d := edged.Start(t, cfg)
	id, _ := imageref.RepoID(git.URL("fleet/apps"))
	var out string
	deadline := time.Now().Add(60 * time.Second)
	for {
		var errOut string
		var code int
		out, errOut, code = runCLI(t, "status", "--edge", d.URL)
		if code != 0 {
			t.Fatalf("status: exit %d\n%s", code, errOut)
		}
		if strings.Contains(out, tip[:12]+"  waiting") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s waiting:\n%s", tip[:12], out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"link: closed, next window ", "budget per day: ", "left of 953.7 MiB", id, "refs/heads/main: upstream " + tip[:12] + ", nothing ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	js, _, code := runCLI(t, "status", "--edge", d.URL, "-o", "json")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(js), "{") || !strings.Contains(js, `"repos"`) {
		t.Fatalf("status -o json: exit %d\n%s", code, js)
	}
	if _, errOut, code := runCLI(t, "status", "--edge", "http://127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "edge daemon at http://127.0.0.1:1") {
		t.Fatalf("no daemon: exit %d, %s", code, errOut)
	}
	for _, args := range [][]string{{"status"}, {"status", "--edge", "ftp://x"}, {"status", "--edge", d.URL, "-o", "yaml"}} {
		if _, errOut, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, %s; want 2", args, code, errOut)
		}
	}
}

// What the daemon sends is outside input: documents that do not parse
// are errors that print nothing, and text from them reaches the terminal
// on one line without control characters.
func TestRenderStatus(t *testing.T) {
	var b strings.Builder
	doc := `{"version":"v1\u001b[31m","now":"2026-12-01T10:00:00Z","link":{"open":true,"until":"2026-12-01T12:00:00Z","rateCap":1048576,
		"budget":[{"period":"day","limitBytes":1000,"usedBytes":1500,"leftBytes":-500,"resetsAt":"2026-12-02T00:00:00Z"}],"stopped":"budget\nspent"},
		"repos":[{"id":"git.example.com/fleet/apps","tracked":[{"name":"refs/heads/main","upstreamTip":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","ready":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","gated":true}],
		"revisions":[{"revision":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","state":"syncing","bytesDone":1048576,"bytesTotal":4194304,"rate":2048,"queue":1,"priority":"newest","completeBy":"2026-12-01T10:30:00Z"},
		{"revision":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","state":"complete","bytesDone":4194304,"bytesTotal":4194304,"deltaLayers":2,"deltaSavedBytes":3145728}]}]}`
	if err := renderStatus(&b, "http://edge", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"edge http://edge (ballast v1 [31m) at Tue 01 Dec 10:00 UTC",
		"link: open until Tue 01 Dec 12:00 UTC, cap 1.0 MiB/s",
		"budget per day: 0 B left of 1000 B, resets Wed 02 Dec 00:00 UTC",
		"sync waits: budget spent",
		"refs/heads/main: upstream aaaaaaaaaaaa, advertised bbbbbbbbbbbb",
		"aaaaaaaaaaaa  syncing   1.0 MiB of 4.0 MiB, at 2.0 KiB/s, #1 in the queue (newest), complete by Tue 01 Dec 10:30 UTC",
		"bbbbbbbbbbbb  complete  4.0 MiB, 2 layers from deltas (3.0 MiB saved)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{``, `[]`, `{"repos":"x"}`, `{} {}`, `{"now":"yesterday"}`} {
		var w strings.Builder
		if err := renderStatus(&w, "http://edge", []byte(bad)); err == nil || w.Len() != 0 {
			t.Errorf("%q: err %v, printed %q", bad, err, w.String())
		}
	}
}

func FuzzRenderStatus(f *testing.F) {
	f.Add([]byte(`{"repos":[{"id":"x","revisions":[{"revision":"ab","state":"complete","bytesTotal":-1}]}]}`))
	f.Add([]byte(`{"link":{"budget":[{"period":"day\u0007","leftBytes":-9223372036854775808}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b strings.Builder
		if err := renderStatus(&b, "http://edge", raw); err != nil {
			return
		}
		for _, r := range b.String() {
			if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
				t.Fatalf("control character %U in %q", r, b.String())
			}
		}
		_ = renderStatus(io.Discard, "http://edge", raw)
	})
}
