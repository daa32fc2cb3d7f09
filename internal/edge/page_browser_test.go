package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/logging"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/release"
	"github.com/ballast-dev/ballast/internal/testutil/browser"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// TestStatusPageInBrowser opens the status page of a real daemon (real
// upstream git server and registry) in headless Chromium and watches it
// follow the sync without reloading: one repository whose bundle
// completes, one whose revision has no bundle, one whose upstream is
// unreachable.
func TestStatusPageInBrowser(t *testing.T) {
	tab := browser.Start(t)
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})

	apps := git.CreateRepo(t, "fleet/apps")
	infra := git.CreateRepo(t, "fleet/infra")
	infra.Commit("main", map[string]string{"README": "infra"})
	rev := apps.Commit("main", map[string]string{"README": "apps"})
	pushBundle(t, up.Repo("fleet/apps-bundles"), rev, map[string]v1.Image{
		"ghcr.io/org/app:stable":    testimage.Image(t, "linux/amd64", 2, 256<<10),
		"docker.io/library/redis:7": testimage.Image(t, "linux/amd64", 1, 128<<10),
	})
	offlineURL := "http://127.0.0.1:1/fleet/legacy.git" // nothing listens on port 1

	repo := func(url, bundles string) config.Repository {
		return config.Repository{URL: url, Bundles: bundles, Track: []string{"refs/heads/main"},
			KeepRevisions: 5, PollInterval: config.Duration{Duration: time.Second}}
	}
	cfg := &config.Config{
		DataDir: t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{
			repo(git.URL("fleet/apps"), up.Repo("fleet/apps-bundles")),
			repo(git.URL("fleet/infra"), up.Repo("fleet/infra-bundles")),
			repo(offlineURL, up.Repo("fleet/legacy-bundles")),
		},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := edge.New(cfg, logging.Discard())
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
	select {
	case <-d.Started():
	case err := <-done:
		t.Fatal(err)
	}
	base := "http://" + d.Addr("http").String()
	appsID, _ := imageref.RepoID(git.URL("fleet/apps"))
	infraID, _ := imageref.RepoID(git.URL("fleet/infra"))
	legacyID, _ := imageref.RepoID(offlineURL)

	// Open the page at once: it must catch up with the sync by itself.
	run(t, tab, 30*time.Second, chromedp.Navigate(base+"/"))
	run(t, tab, 5*time.Second, chromedp.Evaluate[chromedp.Void]("window.notReloaded = true"))
	waitFor(t, tab, "apps complete, infra without bundle, legacy offline", fmt.Sprintf(
		`%s.includes("complete") && %s.includes("no bundle") && %s.includes("offline")`,
		sectionText(appsID), sectionText(infraID), sectionText(legacyID)))

	text := evaluate[string](t, tab, sectionText(appsID))
	for _, want := range []string{appsID, "online", rev[:7], "complete", "in sync", "No verify results reported yet."} {
		if !strings.Contains(text, want) {
			t.Errorf("apps section lacks %q:\n%s", want, text)
		}
	}
	if !evaluate[bool](t, tab, fmt.Sprintf(`document.querySelector('span.sha[title=%q]') !== null`, rev)) {
		t.Error("no short SHA with the full SHA in its title")
	}
	if text := evaluate[string](t, tab, sectionText(legacyID)); !strings.Contains(text, "Last error") {
		t.Errorf("offline section shows no error:\n%s", text)
	}

	// Verify results posted now appear without a reload.
	postVerification(t, base, cfg.APITokenFile(), edge.Verification{Repo: git.URL("fleet/apps"), Revision: rev, Allowed: true, Reason: "all 2 images at the edge"})
	postVerification(t, base, cfg.APITokenFile(), edge.Verification{Repo: git.URL("fleet/apps"), Revision: strings.Repeat("e", 40), Allowed: false, Reason: "bundle incomplete: 3 blobs missing"})
	waitFor(t, tab, "verify results", fmt.Sprintf(`%[1]s.includes("all 2 images at the edge") && %[1]s.includes("bundle incomplete: 3 blobs missing")`, sectionText(appsID)))
	text = evaluate[string](t, tab, sectionText(appsID))
	for _, want := range []string{"allowed", "blocked", "eeeeeee"} {
		if !strings.Contains(text, want) {
			t.Errorf("apps section lacks %q after the verify results:\n%s", want, text)
		}
	}
	if !evaluate[bool](t, tab, "window.notReloaded === true") {
		t.Error("the page reloaded instead of refreshing in place")
	}
	if msg := evaluate[string](t, tab, `document.getElementById("conn").textContent`); msg != "" {
		t.Errorf("page says it lost the daemon: %q", msg)
	}

	tab.Screenshot(t, "status-page.png")
	run(t, tab, 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	if w := evaluate[int](t, tab, "document.documentElement.scrollWidth"); w > 390 {
		t.Errorf("page is %d px wide on a 390 px phone: it scrolls sideways", w)
	}
	tab.Screenshot(t, "status-page-phone.png")
	if p := tab.Problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// sectionText is a JS expression: the visible text of the repository
// section whose heading holds id, or "".
func sectionText(id string) string {
	return fmt.Sprintf(`([...document.querySelectorAll("section.repo")].find(s => s.querySelector("h2").textContent.includes(%q))?.innerText ?? "")`, id)
}

func run(t *testing.T, tab *browser.Tab, timeout time.Duration, a chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Context(), timeout)
	defer cancel()
	if err := chromedp.Do(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func evaluate[T any](t *testing.T, tab *browser.Tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Context(), 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JS expression cond is true in the page.
func waitFor(t *testing.T, tab *browser.Tab, what, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Context(), 120*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(110*time.Second))); err != nil {
		body, _ := chromedp.Run(context.WithoutCancel(tab.Context()), chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("page never showed %s: %v\n%s", what, err, body)
	}
}

func postVerification(t *testing.T, base, tokenFile string, v edge.Verification) {
	t.Helper()
	body, _ := json.Marshal(v)
	tok, err := apiauth.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/verifications", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tok.SetHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("post verification: %s", resp.Status)
	}
}

// pushBundle pushes the images and a bundle for rev to the upstream
// bundle repository, as CI does.
func pushBundle(t *testing.T, repo, rev string, images map[string]v1.Image) {
	t.Helper()
	b := bundle.Bundle{Revision: rev, Created: time.Now()}
	for ref, img := range images {
		r, err := imageref.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		dg, _ := img.Digest()
		size, _ := img.Size()
		mt, _ := img.MediaType()
		dst, _ := name.NewDigest(repo+"@"+dg.String(), name.Insecure)
		if err := remote.Write(dst, img); err != nil {
			t.Fatal(err)
		}
		b.Images = append(b.Images, bundle.Image{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Size: size, Digest: dg}})
	}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(repo+":"+rev, name.Insecure)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// TestStatusPageShowsDeltaSavings follows a real daemon in headless
// Chromium while a revision's changed layer is made on site from a
// sub-layer delta that bundle's delta step published upstream: the
// revision's row shows the layers made from deltas and the bytes saved.
func TestStatusPageShowsDeltaSavings(t *testing.T) {
	tab := browser.Start(t)
	gitserver.RequireGit(t)
	git := gitserver.New(t)
	up := regserver.Start(t, regserver.Options{})
	apps := git.CreateRepo(t, "fleet/apps")
	bundles := up.Repo("fleet/apps-bundles")
	const ref = "ghcr.io/org/web:1"
	u := layergen.Assets(t, 40)
	oldImg := layergen.Image(t, layergen.Compress(t, u.Old, false))
	newImg := layergen.Image(t, layergen.Compress(t, u.New, false))
	rev1 := apps.Commit("main", map[string]string{"README": "1"})
	pushBundle(t, bundles, rev1, map[string]v1.Image{ref: oldImg})

	cfg := &config.Config{
		DataDir: t.TempDir(),
		Listen:  config.Listen{HTTP: "127.0.0.1:0", Registry: "127.0.0.1:0"},
		Repositories: []config.Repository{{URL: git.URL("fleet/apps"), Bundles: bundles, Track: []string{"refs/heads/main"},
			KeepRevisions: 5, PollInterval: config.Duration{Duration: time.Second}}},
		UpstreamRegistries: map[string]config.UpstreamRegistry{up.Addr: {Insecure: true}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := edge.New(cfg, logging.Discard())
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
	select {
	case <-d.Started():
	case err := <-done:
		t.Fatal(err)
	}
	appsID, _ := imageref.RepoID(git.URL("fleet/apps"))
	run(t, tab, 30*time.Second, chromedp.Navigate("http://"+d.Addr("http").String()+"/"))
	waitFor(t, tab, "the first revision complete", fmt.Sprintf(`%s.includes("complete")`, sectionText(appsID)))

	// The second revision: its image, then its deltas, then its bundle
	// index, as bundle writes them.
	rev2 := apps.Commit("main", map[string]string{"README": "2"})
	dg, _ := newImg.Digest()
	dst, _ := name.NewDigest(bundles+"@"+dg.String(), name.Insecure)
	if err := remote.Write(dst, newImg); err != nil {
		t.Fatal(err)
	}
	repo, err := registryclient.New(bundles, registryclient.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := transfer.New()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := imageref.Parse(ref)
	mt, _ := newImg.MediaType()
	n, _ := newImg.Size()
	sum, err := release.PublishDeltas(context.Background(), eng, repo, rev2,
		[]bundle.Image{{Ref: r, Descriptor: v1.Descriptor{MediaType: mt, Digest: dg, Size: n}}}, []string{rev1}, nil)
	if err != nil || sum.Deltas != 1 {
		t.Fatalf("deltas: %+v %v", sum, err)
	}
	pushBundle(t, bundles, rev2, map[string]v1.Image{ref: newImg})

	waitFor(t, tab, "the delta savings", fmt.Sprintf(`%s.includes("layer(s) from deltas")`, sectionText(appsID)))
	text := evaluate[string](t, tab, fmt.Sprintf(`[...document.querySelectorAll("section.repo tr")].find(r => r.querySelector('td[data-label="Revision"] span.sha[title=%q]'))?.innerText ?? ""`, rev2))
	// The size is the bundle's, not 0 B (a manifest's progress event,
	// which carries no byte counts, once reset it).
	if !strings.Contains(text, "complete") || !strings.Contains(text, "1 layer(s) from deltas") || !strings.Contains(text, "saved on the link") ||
		strings.Contains(text, "0 B ·") {
		t.Errorf("the second revision's row: %q", text)
	}
	t.Logf("row: %s", text)
	if p := tab.Problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}
