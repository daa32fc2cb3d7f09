package syncer

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-dev/ballast/internal/linkplan"
)

// linkStatus is the link policy's state now.
func (s *Syncer) linkStatus() LinkStatus {
	now := s.plan.Clock.Now()
	st := s.plan.Schedule.At(now)
	ls := LinkStatus{Always: s.plan.Schedule.Always(), Open: st.Open, RateCap: st.Rate,
		MeasuredRate: s.gate.measuredRate(), GitPollAllowed: s.GitPollAllowed()}
	if !st.Until.IsZero() {
		u := st.Until.UTC()
		ls.Until = &u
		next := st.Until
		if st.Open {
			next = s.plan.Schedule.NextOpen(st.Until)
		}
		if !next.IsZero() {
			n := next.UTC()
			ls.NextWindow = &n
		}
	}
	if s.plan.Ledger != nil {
		ls.Budget = s.plan.Ledger.Usage()
		for i := range ls.Budget {
			ls.Budget[i].Start, ls.Budget[i].ResetsAt = ls.Budget[i].Start.UTC(), ls.Budget[i].ResetsAt.UTC()
		}
	}
	if d := s.plan.Decide(linkplan.Override{}); !d.OK {
		ls.Stopped = d.Reason
		if !d.Until.IsZero() {
			ls.Stopped += " until " + d.Until.UTC().Format(time.RFC3339)
		}
	}
	s.now.Lock()
	ls.SyncNowPending = s.now.pending
	s.now.Unlock()
	return ls
}

// forecast fills CompleteBy and ETASeconds of every revision not complete,
// taking them in the last pass's fetch order (then the rest, newest
// first): each one's missing bytes queue behind those of the revisions
// before it. A revision whose size is not known yet (its bundle index
// never read) gets SizeKnownAt, when the index can next be read, and a
// note instead; the revisions after it get a note too, as their forecast
// would leave its bytes out.
func (s *Syncer) forecast(st *Status) {
	type ref struct{ i, j int }
	var pending []ref
	for i, r := range st.Repos {
		for j, rv := range r.Revisions {
			if rv.State != StateComplete && rv.State != StateNoBundle {
				pending = append(pending, ref{i, j})
			}
		}
	}
	q := func(x ref) int {
		if n := st.Repos[x.i].Revisions[x.j].Queue; n > 0 {
			return n
		}
		return 1 << 30
	}
	sort.SliceStable(pending, func(a, b int) bool { return q(pending[a]) < q(pending[b]) })
	now := s.plan.Clock.Now()
	var missing []int64
	unknown := ""
	for _, x := range pending {
		rv := &st.Repos[x.i].Revisions[x.j]
		switch {
		case unknown != "":
			rv.ForecastNote = "after " + unknown + ", whose size is not known yet"
		case rv.BytesTotal <= 0:
			unknown = short(rv.Revision)
			at := s.plan.NextUse()
			switch {
			case at.IsZero():
				rv.ForecastNote = "size unknown until its bundle index is read; the link policy allows no read within a year"
			case !at.After(now):
				// Now is no news, and a time that moves with the clock
				// would change the fleet document every minute.
				rv.ForecastNote = "size unknown until its bundle index is read at the next pass"
			default:
				u := at.UTC()
				rv.SizeKnownAt = &u
				rv.ForecastNote = "size unknown until its bundle index is read at the next window, " + u.Format("Mon 02 Jan 15:04 MST")
			}
		default:
			missing = append(missing, max(rv.BytesTotal-rv.BytesDone, 0))
		}
	}
	if len(missing) == 0 {
		return
	}
	eta := s.plan.Forecast(st.Link.MeasuredRate, missing)
	for k, t := range eta {
		rv := &st.Repos[pending[k].i].Revisions[pending[k].j]
		if t.IsZero() {
			rv.ForecastNote = "no forecast: no link rate measured or capped yet, or not within a year"
			continue
		}
		u := t.UTC()
		rv.CompleteBy = &u
		rv.ETASeconds = t.Sub(now).Seconds()
	}
}

// linkCollector exports the link policy's state at each scrape.
type linkCollector struct {
	s                                 *Syncer
	used, left, open, nextWindow, eta *prometheus.Desc
	sizeKnownAt                       *prometheus.Desc
	rateCap, measured                 *prometheus.Desc
}

func newLinkCollector(s *Syncer) *linkCollector {
	return &linkCollector{s: s,
		used:       prometheus.NewDesc("ballast_link_budget_used_bytes", "Bytes sync moved over the link in the current budget period.", []string{"period"}, nil),
		left:       prometheus.NewDesc("ballast_link_budget_left_bytes", "Bytes sync may still move over the link in the current budget period.", []string{"period"}, nil),
		open:       prometheus.NewDesc("ballast_link_window_open", "1 while a transfer window is open (or no windows are configured).", nil, nil),
		nextWindow: prometheus.NewDesc("ballast_link_next_window_start_timestamp_seconds", "When the next transfer window opens (after the open one, if any).", nil, nil),
		eta:        prometheus.NewDesc("ballast_sync_revision_eta_seconds", "Forecast seconds until a pending revision's bundle is complete.", []string{"repo", "revision"}, nil),
		sizeKnownAt: prometheus.NewDesc("ballast_sync_revision_size_known_at_timestamp_seconds",
			"For a pending revision whose bundle index was never read (its size and ETA unknown): when the link policy next lets sync read it.", []string{"repo", "revision"}, nil),
		rateCap:  prometheus.NewDesc("ballast_link_rate_cap_bytes_per_second", "The link's rate cap now (0: none).", nil, nil),
		measured: prometheus.NewDesc("ballast_link_measured_rate_bytes_per_second", "The link's recently measured rate.", nil, nil),
	}
}

func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.used, c.left, c.open, c.nextWindow, c.eta, c.sizeKnownAt, c.rateCap, c.measured} {
		ch <- d
	}
}

func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	l := st.Link
	for _, u := range l.Budget {
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(u.Used), string(u.Period))
		ch <- prometheus.MustNewConstMetric(c.left, prometheus.GaugeValue, float64(u.Left), string(u.Period))
	}
	open := 0.0
	if l.Open {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, open)
	if l.NextWindow != nil {
		ch <- prometheus.MustNewConstMetric(c.nextWindow, prometheus.GaugeValue, float64(l.NextWindow.Unix()))
	}
	ch <- prometheus.MustNewConstMetric(c.rateCap, prometheus.GaugeValue, float64(l.RateCap))
	ch <- prometheus.MustNewConstMetric(c.measured, prometheus.GaugeValue, l.MeasuredRate)
	for _, r := range st.Repos {
		for _, rv := range r.Revisions {
			if rv.CompleteBy != nil {
				ch <- prometheus.MustNewConstMetric(c.eta, prometheus.GaugeValue, rv.ETASeconds, r.Repo, rv.Revision)
			}
			if rv.SizeKnownAt != nil {
				ch <- prometheus.MustNewConstMetric(c.sizeKnownAt, prometheus.GaugeValue, float64(rv.SizeKnownAt.Unix()), r.Repo, rv.Revision)
			}
		}
	}
}
