package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// fakeClock is the link policy's clock in these tests: windows and budget
// periods follow it, not the wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func withClock(c *fakeClock) func(*syncer.Options) {
	return func(o *syncer.Options) { o.Clock = c }
}

func revState(s *site, sha string) syncer.RevisionStatus {
	for _, r := range s.sync.Status().Repos {
		for _, rv := range r.Revisions {
			if rv.Revision == sha {
				return rv
			}
		}
	}
	return syncer.RevisionStatus{}
}

// A closed window moves no bytes (counted by the proxy); the pass is not
// an error, the revision waits, and the status says until when. When the
// window opens, the same pass brings the bundle; a manual "sync now"
// brings the next one with the window closed again.
func TestClosedWindowMovesNoBytes(t *testing.T) {
	oslo, _ := time.LoadLocation("Europe/Oslo")
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, oslo)} // Friday noon
	s := newSite(t, func(c *config.Config) {
		c.Link = config.Link{TimeZone: "Europe/Oslo", Windows: []config.Window{{Days: []string{"mon-fri"}, From: "22:00", To: "06:00"}}}
	}, withClock(clk))
	link := viaLink(t, s)
	link.SetRate(8_000_000)
	rev1 := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev1, map[string]artifact{"ghcr.io/org/app:1": testimage.Image(t, "linux/amd64", 2, mb)})

	res := s.pass()
	if res.Waiting != 1 || res.Complete != 0 || res.Done() {
		t.Fatalf("closed window: %+v", res)
	}
	if link.Down() != 0 || link.Up() != 0 {
		t.Fatalf("closed window: the link carried %d bytes down, %d up", link.Down(), link.Up())
	}
	rv := revState(s, rev1)
	if rv.State != syncer.StateWaiting || !strings.Contains(rv.Error, "window") {
		t.Fatalf("status while closed: %+v", rv)
	}
	ls := s.sync.Status().Link
	if ls.Open || ls.NextWindow == nil || !ls.NextWindow.Equal(time.Date(2026, 12, 4, 22, 0, 0, 0, oslo)) {
		t.Fatalf("link status: %+v", ls)
	}

	clk.Set(time.Date(2026, 12, 4, 22, 0, 0, 0, oslo))
	if res := s.pass(); res.Complete != 1 || !res.Done() {
		t.Fatalf("open window: %+v", res)
	}
	if link.Down() < 2*mb {
		t.Fatalf("open window: the link carried %d bytes", link.Down())
	}

	// Saturday noon: closed. A manual sync now overrides the window.
	clk.Set(time.Date(2026, 12, 5, 12, 0, 0, 0, oslo))
	rev2 := s.commit(map[string]string{"a": "2"})
	pushBundle(t, s.up, s.bundles, rev2, map[string]artifact{"ghcr.io/org/app:2": testimage.Image(t, "linux/amd64", 1, mb)})
	before := link.Down()
	if res := s.pass(); res.Waiting != 1 || link.Down() != before {
		t.Fatalf("closed again: %+v, %d bytes", res, link.Down()-before)
	}
	s.sync.SyncNow(linkplan.Override{Window: true})
	if !s.sync.Status().Link.SyncNowPending {
		t.Fatal("sync now not pending")
	}
	if res := s.pass(); res.Complete != 2 || !res.Done() {
		t.Fatalf("sync now: %+v", res)
	}
	// The override was for one pass.
	rev3 := s.commit(map[string]string{"a": "3"})
	pushBundle(t, s.up, s.bundles, rev3, map[string]artifact{"ghcr.io/org/app:3": testimage.Image(t, "linux/amd64", 1, mb)})
	if res := s.pass(); res.Waiting != 1 {
		t.Fatalf("after sync now: %+v", res)
	}
}

// A budget stops a sync cleanly mid-blob: not one byte past it crosses
// the link; the next pass in the same day moves nothing; after midnight in
// the budget's zone, a restarted syncer (the ledger read back from the data
// dir) resumes, and the link carries each byte of the bundle once.
func TestBudgetStopsAndResumesAfterRollover(t *testing.T) {
	oslo, _ := time.LoadLocation("Europe/Oslo")
	clk := &fakeClock{t: time.Date(2026, 12, 4, 20, 0, 0, 0, oslo)}
	const budget = 2_500_000
	s := newSite(t, func(c *config.Config) {
		c.Link = config.Link{TimeZone: "Europe/Oslo", MaxBandwidth: "8MB/s", Budget: &config.Budget{PerDay: "2.5MB"}}
	}, withClock(clk))
	link := viaLink(t, s)
	link.SetRate(8_000_000)
	img := testimage.Image(t, "linux/amd64", 4, mb)
	size := selectionSize(t, img, "")
	rev := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/app:1": img})

	res := s.pass()
	if res.Complete != 0 || res.Waiting != 1 || !strings.Contains(res.LinkStop, "budget") {
		t.Fatalf("pass 1: %+v", res)
	}
	used := s.sync.LinkBytes()
	if used > budget {
		t.Fatalf("sync read %d bytes over a budget of %d", used, budget)
	}
	if used < budget-64<<10 {
		t.Fatalf("sync read %d bytes of a budget of %d: stopped early", used, budget)
	}
	st := s.sync.Status()
	if len(st.Link.Budget) != 1 || st.Link.Budget[0].Left != budget-used || !st.Link.Budget[0].ResetsAt.Equal(time.Date(2026, 12, 5, 0, 0, 0, 0, oslo)) {
		t.Fatalf("budget status: %+v (read %d)", st.Link.Budget, used)
	}
	if rv := revState(s, rev); rv.State != syncer.StateWaiting || rv.CompleteBy == nil || rv.CompleteBy.Before(time.Date(2026, 12, 5, 0, 0, 0, 0, oslo)) {
		t.Fatalf("waiting revision: %+v", rv)
	}
	down1 := link.Down()
	if res := s.pass(); res.Waiting != 1 || link.Down() != down1 {
		t.Fatalf("same day: %+v, link moved %d more", res, link.Down()-down1)
	}

	clk.Set(time.Date(2026, 12, 5, 0, 0, 1, 0, oslo))
	s.restart()
	if left, _ := s.sync.Plan().BudgetLeft(); left != budget {
		t.Fatalf("after rollover: %d left", left)
	}
	if res := s.pass(); res.Complete != 1 || !res.Done() {
		t.Fatalf("after rollover: %+v", res)
	}
	if rep := s.check(rev); !rep.Complete() {
		t.Fatalf("not complete: %v", rep.Missing)
	}
	// Every blob byte once; the rest is HTTP headers and the manifests.
	if over := link.Down() - size; over < 0 || over > 48<<10 {
		t.Fatalf("the link carried %d bytes for a %d byte selection (%+d): a byte fetched twice?", link.Down(), size, over)
	}
	t.Logf("link carried %d bytes for %d (day 1: %d, budget %d)", link.Down(), size, down1, budget)
}

// A budget spent before the revision's bytes are all on site leaves the
// waiting revision with its size, and so a forecast rather than "size
// unknown", counting each blob once (not again for its link into the
// bundle repository, which doubled the missing bytes and so the ETA):
//   - spent in the middle of small blobs, none of them whole: the copy
//     told what it was moving, and out of how much, at each blob's first
//     bytes;
//   - spent by hinted blobs while the image manifest is still on its way
//     (held back upstream here): the bundle index's blob hints gave the
//     size as soon as the index was read.
func TestBudgetStopKeepsTheSize(t *testing.T) {
	img := testimage.Image(t, "linux/amd64", 3, 256<<10)
	d, _ := img.Digest()
	for _, tc := range []struct {
		name string
		via  func(t *testing.T, s *site)
	}{
		{"mid small blobs", func(t *testing.T, s *site) { viaLink(t, s) }},
		{"before the manifests", func(t *testing.T, s *site) {
			rec := viaRecorder(t, s)
			rec.mu.Lock()
			defer rec.mu.Unlock()
			rec.holdUntil["/manifests/"+d.String()] = "/never"
			rec.holdMax = 2 * time.Second
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)}
			s := newSite(t, func(c *config.Config) {
				c.Link = config.Link{MaxBandwidth: "4MB/s", Budget: &config.Budget{PerDay: "300KB"}}
			}, withClock(clk))
			tc.via(t, s)
			size := selectionSize(t, img, "")
			rev := s.commit(map[string]string{"a": "1"})
			pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/app:1": img})
			if res := s.pass(); res.Waiting != 1 || !strings.Contains(res.LinkStop, "budget") {
				t.Fatalf("pass: %+v", res)
			}
			rv := revState(s, rev)
			t.Logf("waiting: %d of %d bytes (selection %d)", rv.BytesDone, rv.BytesTotal, size)
			// Every blob counted once: the selection less its manifest.
			if rv.State != syncer.StateWaiting || rv.BytesTotal < size-4096 || rv.BytesTotal > size || rv.CompleteBy == nil || rv.ForecastNote != "" {
				t.Fatalf("waiting revision: state %s, %d of %d bytes (selection %d), complete by %v, note %q", rv.State, rv.BytesDone, rv.BytesTotal, size, rv.CompleteBy, rv.ForecastNote)
			}
		})
	}
}

// Priorities order the fetches: with a budget that lets about one
// revision through per day, the revision the gate waits on comes first,
// then the newest, then the rollback set (deployed before), then the rest.
func TestPriorityOrdersFetches(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	var waitMu sync.Mutex
	waitingOn := ""
	deployed, err := syncer.OpenDeployed(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, func(c *config.Config) {
		c.Repositories[0].KeepRevisions = 3
		c.Link = config.Link{Budget: &config.Budget{PerDay: "1200KiB"}}
	}, withClock(clk), func(o *syncer.Options) {
		o.Deployed = deployed
		o.Waiting = func(_, sha string) bool { waitMu.Lock(); defer waitMu.Unlock(); return sha == waitingOn }
	})
	link := viaLink(t, s)
	link.SetRate(8_000_000)
	var revs []string
	for i := range 4 {
		rev := s.commit(map[string]string{"a": string(rune('0' + i))})
		pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/app:" + string(rune('0'+i)): testimage.Image(t, "linux/amd64", 1, mb)})
		revs = append(revs, rev)
	}
	rest, rollback, waited, newest := revs[0], revs[1], revs[2], revs[3]
	if err := deployed.Record(s.repoID, rollback); err != nil {
		t.Fatal(err)
	}
	waitMu.Lock()
	waitingOn = waited
	waitMu.Unlock()
	var order []string
	done := map[string]bool{}
	for day := range 6 {
		clk.Set(time.Date(2026, 12, 4+day, 12, 0, 0, 0, time.UTC))
		s.pass()
		for _, r := range revs {
			if !done[r] && s.check(r).Complete() || !done[r] && revState(s, r).State == syncer.StateComplete {
				done[r] = true
				order = append(order, r)
			}
		}
		if len(order) == len(revs) {
			break
		}
	}
	names := map[string]string{waited: "waited", newest: "newest", rollback: "rollback", rest: "rest"}
	var got []string
	for _, r := range order {
		got = append(got, names[r])
	}
	if strings.Join(got, " ") != "waited newest rollback rest" {
		t.Fatalf("completion order %v, want %v", got, []string{"waited", "newest", "rollback", "rest"})
	}
	st := revState(s, rest)
	if st.Priority != "rest" {
		t.Errorf("priority of the oldest: %+v", st)
	}
}

// The cap follows the open windows: the lowest cap among them.
func TestRateCapFollowsWindow(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	s := newSite(t, func(c *config.Config) {
		c.Link = config.Link{MaxBandwidth: "5MB/s", Windows: []config.Window{
			{From: "00:00", To: "24:00"},
			{From: "08:00", To: "20:00", MaxBandwidth: "1MB/s"},
		}}
	}, withClock(clk))
	if ls := s.sync.Status().Link; !ls.Open || ls.RateCap != 1_000_000 {
		t.Fatalf("crew hours: %+v", ls)
	}
	clk.Set(time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC))
	if ls := s.sync.Status().Link; !ls.Open || ls.RateCap != 5_000_000 {
		t.Fatalf("night: %+v", ls)
	}
}

// A window that closes in the middle of a blob stops the copy there; the
// blob's bytes stay staged and the next window resumes it: the link
// carries the blob about once (what was in flight at the cut aside).
func TestWindowClosingMidBlobResumesNextWindow(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)}
	s := newSite(t, func(c *config.Config) {
		c.Link = config.Link{Windows: []config.Window{{From: "22:00", To: "23:00"}}}
	}, withClock(clk))
	link := viaLink(t, s)
	link.SetRate(4_000_000)
	img := testimage.Image(t, "linux/amd64", 1, 8*mb)
	size := selectionSize(t, img, "")
	rev := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/big:1": img})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for link.Down() < 3*mb {
			time.Sleep(5 * time.Millisecond)
		}
		clk.Set(time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC))
	}()
	res := s.pass()
	<-closed
	if res.Complete != 0 || res.Waiting != 1 || !strings.Contains(res.LinkStop, "window") {
		t.Fatalf("window closed mid-blob: %+v", res)
	}
	cut := link.Down()
	if cut >= size {
		t.Fatalf("the whole blob crossed (%d of %d) although the window closed", cut, size)
	}
	clk.Set(time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC))
	if res := s.pass(); res.Complete != 1 || !res.Done() {
		t.Fatalf("next window: %+v", res)
	}
	over := link.Down() - size
	t.Logf("cut at %d bytes; the link carried %d for %d (%+d)", cut, link.Down(), size, over)
	// Not resumed would be the cut again (over 3 MiB); what was in the
	// sockets at the cut is lost (a few hundred KiB at most here).
	if over < 0 || over > 1<<20 {
		t.Fatalf("the link carried %d bytes for %d: the blob did not resume", link.Down(), size)
	}
}

// The same with several blobs in flight: they all stop at the close, and
// all resume in the next window.
func TestWindowClosingMidBlobsInFlight(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC)}
	s := newSite(t, func(c *config.Config) {
		c.Link = config.Link{Windows: []config.Window{{From: "22:00", To: "23:00"}}}
	}, withClock(clk))
	link := viaLink(t, s)
	link.SetRate(6_000_000)
	img := testimage.Image(t, "linux/amd64", 4, 3*mb)
	size := selectionSize(t, img, "")
	rev := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/wide:1": img})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for link.Down() < 5*mb {
			time.Sleep(5 * time.Millisecond)
		}
		clk.Set(time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC))
	}()
	res := s.pass()
	<-closed
	if res.Complete != 0 || res.Waiting != 1 {
		t.Fatalf("window closed mid-copy: %+v", res)
	}
	cut := link.Down()
	clk.Set(time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC))
	if res := s.pass(); res.Complete != 1 || !res.Done() {
		t.Fatalf("next window: %+v", res)
	}
	over := link.Down() - size
	t.Logf("cut at %d bytes; the link carried %d for %d (%+d)", cut, link.Down(), size, over)
	// Not resumed would cost the cut again (5 MiB or more); what the four
	// connections held in their sockets at the cut is lost (up to about a
	// socket buffer each on loopback).
	if cut >= size || over < 0 || over > 4<<20 {
		t.Fatalf("cut at %d, the link carried %d bytes for %d: not resumed", cut, link.Down(), size)
	}
}

// Per-repository weights order fetches between repositories within a
// tier: with a budget that lets about one revision through per day, the
// tip of the heavier repository comes first although it is configured
// second.
func TestWeightsOrderRepositories(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	infraGit := gitserver.New(t)
	infra := infraGit.CreateRepo(t, "fleet/infra")
	infraRev := infra.Commit("main", map[string]string{"b": "1"})
	var infraID, infraBundles string
	s := newSite(t, func(c *config.Config) {
		c.Link = config.Link{Budget: &config.Budget{PerDay: "1200KiB"}}
		infraBundles = strings.Replace(c.Repositories[0].Bundles, "apps-bundles", "infra-bundles", 1)
		c.Repositories = append(c.Repositories, config.Repository{URL: infraGit.URL("fleet/infra"), Bundles: infraBundles,
			Track: []string{"refs/heads/main"}, KeepRevisions: 1, Weight: 5, PollInterval: config.Duration{Duration: time.Hour}})
		infraID, _ = imageref.RepoID(infraGit.URL("fleet/infra"))
	}, withClock(clk))
	link := viaLink(t, s)
	link.SetRate(8_000_000)
	appsRev := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, appsRev, map[string]artifact{"ghcr.io/org/app:1": testimage.Image(t, "linux/amd64", 1, mb)})
	pushBundle(t, s.up, "fleet/infra-bundles", infraRev, map[string]artifact{"ghcr.io/org/infra:1": testimage.Image(t, "linux/amd64", 1, mb)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.mirror.Poll(ctx, infraID); err != nil {
		t.Fatal(err)
	}
	state := func(repo, sha string) syncer.RevisionStatus {
		for _, r := range s.sync.Status().Repos {
			for _, rv := range r.Revisions {
				if r.Repo == repo && rv.Revision == sha {
					return rv
				}
			}
		}
		return syncer.RevisionStatus{}
	}
	s.pass()
	if a, b := state(s.repoID, appsRev), state(infraID, infraRev); b.State != syncer.StateComplete || a.State == syncer.StateComplete || b.Queue != 1 || a.Queue != 2 {
		t.Fatalf("day 1: apps (weight 1) %s queue %d, infra (weight 5) %s queue %d; want infra first", a.State, a.Queue, b.State, b.Queue)
	}
	clk.Set(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	s.pass()
	if a := state(s.repoID, appsRev); a.State != syncer.StateComplete {
		t.Fatalf("day 2: apps %s", a.State)
	}
}

// redirectBlobs puts a front before s's upstream registry that answers
// every blob GET with a 307 to the registry itself, as registries backed
// by object storage or a CDN do (the answer has a small body, which Go's
// client reads before it follows), and passes everything else through.
func redirectBlobs(t *testing.T, s *site) {
	t.Helper()
	up := &url.URL{Scheme: "http", Host: s.up.Addr}
	proxy := httputil.NewSingleHostReverseProxy(up)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, up.String()+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	addr := strings.TrimPrefix(front.URL, "http://")
	s.cfg.Repositories[0].Bundles = addr + "/" + s.bundles
	s.cfg.UpstreamRegistries[addr] = config.UpstreamRegistry{Insecure: true}
}

// A registry that redirects blob reads: the redirect's own body crosses
// the link under the blob's grant, and is charged, but it is not the
// blob's: the blob is still read to its last byte, with a budget and
// without.
func TestSyncBlobsBehindARedirect(t *testing.T) {
	for _, budget := range []*config.Budget{nil, {PerDay: "1GB"}} {
		s := newSite(t, func(c *config.Config) { c.Link = config.Link{Budget: budget} })
		redirectBlobs(t, s)
		rev := s.commit(map[string]string{"a": "1"})
		pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"ghcr.io/org/app:1": testimage.Image(t, "linux/amd64", 2, 256<<10)})
		if res := s.pass(); res.Complete != 1 || !res.Done() {
			t.Fatalf("budget %v: %+v", budget, res)
		}
		if rep := s.check(rev); !rep.Complete() {
			t.Fatalf("budget %v: not complete: %v", budget, rep.Missing)
		}
	}
}
