package linkplan

import (
	"math"
	"time"
)

// Plan is the link policy of one edge: its schedule, its budget ledger
// (nil: no budget) and its clock.
type Plan struct {
	Clock    Clock
	Schedule Schedule
	Ledger   *Ledger
	// GitPollOutsideWindows lets the git mirror poll while no window is
	// open (polls are small). The default in the config is true.
	GitPollOutsideWindows bool
}

// Override lifts parts of the policy for one manual "sync now".
type Override struct {
	Window bool // use the link although no window is open
	Budget bool // use the link although the budget is spent
}

// Decision says whether sync may use the link now, and if not, why and
// until when.
type Decision struct {
	OK     bool
	Reason string    // "window closed" or "budget spent" when !OK
	Until  time.Time // when it may next be OK (zero: unknown)
	Rate   int64     // the cap in bytes/s while OK; 0: none
}

// Decide applies the schedule and the budget at the clock's time.
func (p *Plan) Decide(o Override) Decision {
	now := p.Clock.Now()
	st := p.Schedule.At(now)
	if !st.Open && !o.Window {
		return Decision{Reason: "window closed", Until: st.Until}
	}
	if p.Ledger != nil && !o.Budget {
		if left, limited := p.Ledger.Left(); limited && left <= 0 {
			return Decision{Reason: "budget spent", Until: p.Ledger.RefillAt()}
		}
	}
	rate := st.Rate
	if !st.Open {
		rate = p.Schedule.LinkRate() // a window override runs at the link's own cap
	}
	return Decision{OK: true, Rate: rate}
}

// BudgetLeft is the ledger's Left (unlimited without a ledger).
func (p *Plan) BudgetLeft() (int64, bool) {
	if p.Ledger == nil {
		return 0, false
	}
	return p.Ledger.Left()
}

// Charge records n bytes carried by the link.
func (p *Plan) Charge(n int64) error {
	if p.Ledger == nil {
		return nil
	}
	return p.Ledger.Charge(n)
}

// GitPollAllowed reports whether the git mirror may poll upstream now.
func (p *Plan) GitPollAllowed() bool {
	return p.GitPollOutsideWindows || p.Schedule.At(p.Clock.Now()).Open
}

// forecastHorizon bounds the forecast: later than this is "not within a
// year at this rate".
const forecastHorizon = 366 * 24 * time.Hour

// Forecast returns, for revisions fetched one after the other in the given
// order, when each should be complete: missing[i] is revision i's missing
// bytes, rate the measured link rate in bytes/s (0: unknown, then each
// window's cap is assumed). The link moves bytes only inside windows, at
// the lesser of rate and the window's cap, and only while the budget has
// bytes left, refilled at each period's rollover. A zero time means no
// forecast: neither a rate nor a cap is known, or not within a year.
func (p *Plan) Forecast(rate float64, missing []int64) []time.Time {
	out := make([]time.Time, len(missing))
	now := p.Clock.Now()
	// left per limited period, and when each resets.
	type acct struct {
		p     Period
		left  float64
		reset time.Time
		limit float64
	}
	var accts []*acct
	var loc *time.Location
	if p.Ledger != nil {
		loc = p.Ledger.Budget().loc()
		for _, u := range p.Ledger.Usage() {
			accts = append(accts, &acct{p: u.Period, left: float64(u.Left), reset: u.ResetsAt, limit: float64(u.Limit)})
		}
	}
	t := now
	end := now.Add(forecastHorizon)
	need := 0.0
	i := 0
	for i < len(missing) && missing[i] <= 0 {
		out[i] = now
		i++
	}
	if i < len(missing) {
		need = float64(missing[i])
	}
	for i < len(missing) && t.Before(end) {
		st := p.Schedule.At(t)
		segEnd := end
		if !st.Until.IsZero() && st.Until.Before(segEnd) {
			segEnd = st.Until
		}
		allow := math.Inf(1)
		for _, a := range accts {
			if !a.reset.After(t) {
				a.left, a.reset = a.limit, PeriodEnd(a.p, t, loc)
			}
			allow = min(allow, a.left)
			if a.reset.Before(segEnd) {
				segEnd = a.reset
			}
		}
		r := rate
		if st.Rate > 0 && (r <= 0 || float64(st.Rate) < r) {
			r = float64(st.Rate)
		}
		if !st.Open || allow <= 0 {
			t = segEnd
			continue
		}
		if r <= 0 {
			break // no rate known: no forecast
		}
		can := min(r*segEnd.Sub(t).Seconds(), allow)
		for i < len(missing) && need <= can {
			d := time.Duration(need / r * float64(time.Second))
			t = t.Add(d)
			can -= need
			for _, a := range accts {
				a.left -= need
			}
			out[i] = t
			i++
			need = 0
			if i < len(missing) {
				need = float64(missing[i])
			}
		}
		if i == len(missing) {
			break
		}
		need -= can
		for _, a := range accts {
			a.left -= can
		}
		if can >= allow && allow < math.Inf(1) {
			// The budget ran out inside this segment: wait for a reset.
			next := segEnd
			for _, a := range accts {
				if a.left <= 0 && a.reset.After(t) {
					next = a.reset
				}
			}
			for _, a := range accts {
				if a.left <= 0 && a.reset.After(next) {
					next = a.reset
				}
			}
			t = next
			continue
		}
		t = segEnd
	}
	return out
}

// NextUse is when sync may next move a byte over the link without an
// override: the clock's time when a window is open and the budget has
// bytes left, else the first moment both hold (the next window's opening
// or the budget's refill, whichever comes later). Zero: not within a year.
func (p *Plan) NextUse() time.Time {
	now := p.Clock.Now()
	var usage []Usage
	if p.Ledger != nil {
		usage = p.Ledger.Usage()
	}
	end := now.Add(forecastHorizon)
	for t := now; t.Before(end); {
		st := p.Schedule.At(t)
		if !st.Open {
			if st.Until.IsZero() {
				return time.Time{}
			}
			t = st.Until
			continue
		}
		// A period spent now is spent until it resets; the periods after
		// it start with nothing used.
		next := t
		for _, u := range usage {
			if u.Left <= 0 && t.Before(u.ResetsAt) && u.ResetsAt.After(next) {
				next = u.ResetsAt
			}
		}
		if next.Equal(t) {
			return t
		}
		t = next
	}
	return time.Time{}
}
