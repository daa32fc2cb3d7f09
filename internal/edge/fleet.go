package edge

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/datadir"
	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/linkplan"
	"github.com/ballast-dev/ballast/internal/redact"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/version"
)

// addFleet starts publishing the site's status document when the config
// has a fleet section (docs/fleet.md). The publisher runs as its own
// service: it reads the parts' in-memory status, never waits on them, and
// its failures show in Status().Fleet.
func (d *Daemon) addFleet() error {
	fc := d.cfg.Fleet
	if fc == nil {
		return nil
	}
	var user, pass string
	if fc.UsernameFile != "" {
		var err error
		if user, err = readSecretFile(fc.UsernameFile); err != nil {
			return fmt.Errorf("fleet.usernameFile: %w", err)
		}
		if pass, err = readSecretFile(fc.PasswordFile); err != nil {
			return fmt.Errorf("fleet.passwordFile: %w", err)
		}
	}
	host, _, _ := strings.Cut(fc.Repository, "/")
	state := datadir.Of(d.cfg.DataDir).FleetState()
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	p, err := fleet.NewPublisher(fleet.PublisherOptions{
		Repository: fc.SiteRepository(),
		Username:   user, Password: pass,
		Insecure:  d.cfg.UpstreamRegistries[host].Insecure,
		StateFile: state,
		Interval:  fc.Interval.Duration,
		Heartbeat: fc.Heartbeat.Duration,
		Source:    func(context.Context) (fleet.Document, error) { return d.FleetDocument(), nil },
		LastLink:  d.lastLink,
		Signer:    fc.Signer(),
		Logger:    d.log,
	})
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	d.fleet = p
	d.AddService(Service{Name: "fleet", Run: p.Run})
	return nil
}

// readSecretFile reads a one-line secret, without its line ending.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: want one non-empty line", path)
	}
	return s, nil
}

// lastLink is the newest successful upstream fetch of any repository.
func (d *Daemon) lastLink() time.Time {
	var t time.Time
	for _, m := range d.Mirror.Repos() {
		if m.LastSuccess != nil && m.LastSuccess.After(t) {
			t = *m.LastSuccess
		}
	}
	return t
}

// FleetDocument is the site's status document (internal/fleet) now: per
// repository the tracked refs' ready revisions, every complete revision,
// the deployed one and those on their way, and the errors, all redacted.
// It holds no clock readings, so it changes only when the site's state
// does. Budget is the link budget's tightest period, nil without one.
func (d *Daemon) FleetDocument() fleet.Document {
	site := ""
	if d.cfg.Fleet != nil {
		site = d.cfg.Fleet.Site
	}
	doc := fleet.Document{Schema: fleet.SchemaVersion, Site: site, Version: version.Get().Version, Repos: []fleet.Repo{}}
	ss := d.Sync.Status()
	bySync := map[string]syncer.RepoStatus{}
	for _, r := range ss.Repos {
		bySync[r.Repo] = r
	}
	for _, m := range d.Mirror.Repos() {
		s := bySync[m.ID]
		r := fleet.Repo{ID: m.ID, Ready: []string{}, Deployed: d.Deployed.Current(m.ID)}
		if cfg, ok := d.cfg.Repository(m.ID); ok {
			for _, t := range tracked(cfg.Track, m, s) {
				r.Tracked = append(r.Tracked, fleet.TrackedRef{Name: t.Name, Ready: t.Ready})
			}
		}
		if m.LastError != "" {
			r.Errors = append(r.Errors, "mirror: "+redact.Text(m.LastError))
		}
		if s.LastError != "" {
			r.Errors = append(r.Errors, "sync: "+redact.Text(s.LastError))
		}
		for _, rv := range s.Revisions {
			if rv.State == syncer.StateComplete {
				r.Ready = append(r.Ready, rv.Revision)
				continue
			}
			p := fleet.Pending{Revision: rv.Revision, State: rv.State, Percent: int(rv.Percent()) / 5 * 5}
			if rv.State == syncer.StateSyncing && rv.ETASeconds > 0 {
				p.ETAMinutes = int(math.Ceil(rv.ETASeconds / 60))
			}
			if rv.CompleteBy != nil {
				p.CompleteBy = roundUp(*rv.CompleteBy, 15*time.Minute).Format(time.RFC3339)
			}
			if rv.SizeKnownAt != nil {
				p.SizeKnownAt = roundUp(*rv.SizeKnownAt, time.Minute).Format(time.RFC3339)
			}
			r.Pending = append(r.Pending, p)
			if rv.Error != "" {
				r.Errors = append(r.Errors, shortSHA(rv.Revision)+": "+redact.Text(rv.Error))
			}
		}
		doc.Repos = append(doc.Repos, r)
	}
	if l := d.Sync.Plan().Ledger; l != nil {
		doc.Budget = fleetBudget(ss.Link.Budget, l.Budget().Loc)
	}
	return fleet.Fit(doc)
}

// roundUp rounds t up to a multiple of step, in UTC.
func roundUp(t time.Time, step time.Duration) time.Time {
	r := t.UTC().Truncate(step)
	if r.Before(t) {
		r = r.Add(step)
	}
	return r
}

// fleetBudget is the budget's tightest period (the least left) for the
// status document, its use rounded down to 1% of the limit (at least
// 1 MB) so that the document changes at most about a hundred times a
// period; nil without a budget. Periods are named in loc, the budget's
// zone (nil: UTC).
func fleetBudget(us []linkplan.Usage, loc *time.Location) *fleet.Budget {
	var tight *linkplan.Usage
	for i := range us {
		if tight == nil || us[i].Left < tight.Left {
			tight = &us[i]
		}
	}
	if tight == nil {
		return nil
	}
	step := max(tight.Limit/100, 1_000_000)
	if loc == nil {
		loc = time.UTC
	}
	start := tight.Start.In(loc)
	label := string(tight.Period) + " " + start.Format("2006-01-02")
	if tight.Period == linkplan.Month {
		label = string(tight.Period) + " " + start.Format("2006-01")
	}
	return &fleet.Budget{UsedBytes: tight.Used / step * step, LimitBytes: tight.Limit, Period: label}
}
