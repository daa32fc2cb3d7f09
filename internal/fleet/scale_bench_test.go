package fleet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/trust"
)

// BenchmarkFleet500 simulates 500 sites (lightweight publishers: the
// publisher code the daemon runs, one per site, no daemons) against one
// hub registry on loopback, for each kind of hub:
//
//   - a simulated day with nothing changing: every site looks every 5
//     minutes and heartbeats every 2 hours; reported per site per hour
//     (requests and bytes on the TCP connections, plain HTTP);
//   - one change of every site's document, per site (requests, bytes);
//   - `ballast fleet`'s read of all 500 (catalog listing, manifest and
//     document of each), timed per iteration, and as a ratio to a baseline
//     run in the same process: one manifest HEAD per site, the least any
//     reader must do.
//
// Each hub runs twice: "unsigned", and "signed", where every site signs
// with its own key (fleet.signKey) and the read verifies every document
// against a directory of the 500 sites' public keys (--key DIR).
//
// Run: go test -run XXX -bench Fleet500 -benchtime 3x ./internal/fleet/
func BenchmarkFleet500(b *testing.B) {
	for _, h := range hubs(b) {
		b.Run(h.name+"/unsigned", func(b *testing.B) { benchFleet(b, h, 500, false) })
		b.Run(h.name+"/signed", func(b *testing.B) { benchFleet(b, h, 500, true) })
	}
}

func parseRef(s string) (name.Reference, error) { return name.ParseReference(s, name.Insecure) }

func benchFleet(b *testing.B, h hub, sites int, signed bool) {
	const (
		interval  = 5 * time.Minute
		heartbeat = 2 * time.Hour
		day       = 24 * time.Hour
	)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var c counter
	tr := c.transport()
	dir, keyDir := b.TempDir(), b.TempDir()
	// The repository differs between runs, so that "signed" does not find
	// the documents "unsigned" wrote.
	parent := h.host + "/fleet/sites"
	if signed {
		parent = h.host + "/fleet/signed"
	}
	pubs := make([]*fleet.Publisher, sites)
	docs := make([]fleet.Document, sites)
	for i := range pubs {
		site := fmt.Sprintf("site-%03d", i)
		var signer *trust.Signer
		if signed {
			signer, _ = siteKey(b, keyDir, site+".pub")
		}
		d := &docs[i]
		*d = doc(site, rev1)
		// A realistic document: two repositories, a handful of revisions.
		d.Repos = append(d.Repos, fleet.Repo{ID: "git.example.com/fleet/infra", Ready: []string{rev2, rev1},
			Tracked: []fleet.TrackedRef{{Name: "refs/heads/main", Ready: rev2}}, Deployed: rev2})
		// A metered site waiting for its window: its budget's use and a
		// pending revision's forecast, both steady while nothing moves.
		d.Budget = &fleet.Budget{UsedBytes: 120_000_000, LimitBytes: 500_000_000, Period: "day 2026-12-01"}
		d.Repos[0].Pending = []fleet.Pending{{Revision: rev2, State: "waiting", Percent: 35, CompleteBy: "2026-12-01T23:15:00Z"}}
		p, err := fleet.NewPublisher(fleet.PublisherOptions{
			Repository: parent + "/" + site, Username: h.user, Password: h.pass, Insecure: true,
			StateFile: filepath.Join(dir, site+".json"), Interval: interval, Heartbeat: heartbeat, Now: clock,
			Transport: tr, Signer: signer, Source: func(context.Context) (fleet.Document, error) { return *d, nil },
		})
		if err != nil {
			b.Fatal(err)
		}
		pubs[i] = p
	}
	tick := func() {
		g := errgroup.Group{}
		g.SetLimit(32)
		for _, p := range pubs {
			g.Go(func() error { _, err := p.PublishOnce(ctx); return err })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	tick() // first publish of every site (document changed: it is new)
	r0, b0 := c.snapshot()
	for t := interval; t <= day; t += interval {
		now = now.Add(interval)
		tick()
	}
	r1, b1 := c.snapshot()
	perSiteHour := func(v int64) float64 { return float64(v) / float64(sites) / day.Hours() }
	b.ReportMetric(perSiteHour(b1-b0), "bytes/site/h")
	b.ReportMetric(perSiteHour(r1-r0), "requests/site/h")

	// One change on every site: a new revision is ready.
	for i := range docs {
		docs[i].Repos[0].Ready = []string{rev2, rev1}
	}
	now = now.Add(interval)
	tick()
	r2, b2 := c.snapshot()
	b.ReportMetric(float64(b2-b1)/float64(sites), "bytes/change")
	b.ReportMetric(float64(r2-r1)/float64(sites), "requests/change")

	ro := fleet.ReadOptions{Repository: parent, Insecure: true, Keychain: h.keychain,
		Now: func() time.Time { return now }}
	if signed {
		k, err := fleet.LoadKeys([]string{keyDir})
		if err != nil {
			b.Fatal(err)
		}
		ro.Keys = k
	}
	// Baseline: one manifest HEAD per site, same concurrency.
	start := time.Now()
	g := errgroup.Group{}
	g.SetLimit(16)
	for i := range sites {
		g.Go(func() error {
			ref := fmt.Sprintf("%s/site-%03d:latest", parent, i)
			r, err := parseRef(ref)
			if err != nil {
				return err
			}
			_, err = remote.Head(r, remote.WithAuthFromKeychain(h.keychain))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	baseline := time.Since(start)

	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		s := time.Now()
		f, err := fleet.Read(ctx, ro)
		total += time.Since(s)
		if err != nil {
			b.Fatal(err)
		}
		cur, unk, bad := f.Counts()
		if cur != sites || unk != 0 || bad != 0 {
			b.Fatalf("read %d current, %d unknown, %d bad of %d", cur, unk, bad, sites)
		}
	}
	per := total / time.Duration(b.N)
	// The same read with the sites named (--sites): no catalog walk.
	named := ro
	for i := range sites {
		named.Sites = append(named.Sites, fmt.Sprintf("site-%03d", i))
	}
	s := time.Now()
	if _, err := fleet.Read(ctx, named); err != nil {
		b.Fatal(err)
	}
	namedTime := time.Since(s)
	b.ReportMetric(namedTime.Seconds(), "s/read-named")
	b.ReportMetric(per.Seconds(), "s/read-all")
	b.ReportMetric(per.Seconds()/baseline.Seconds(), "x-baseline-HEADs")
	b.Logf("%s signed=%v: %d sites; quiet day: %.0f bytes and %.2f requests per site per hour; a change: %.0f bytes, %.1f requests per site; read all in %v, %v with --sites (baseline %d HEADs: %v)",
		h.name, signed, sites, perSiteHour(b1-b0), perSiteHour(r1-r0), float64(b2-b1)/float64(sites), float64(r2-r1)/float64(sites),
		per.Round(time.Millisecond), namedTime.Round(time.Millisecond), sites, baseline.Round(time.Millisecond))
}
