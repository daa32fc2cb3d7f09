// Package linkplan owns the policy of a metered link: when sync may use it
// (windows, with a bandwidth cap each), how much it may move per day, week
// or month (the budget ledger, kept under the data dir), in what order
// revisions are fetched, and when each pending revision should be complete
// (the forecast). It reads no clock of its own: every decision takes the
// time from a Clock, so tests drive it with a fake one.
package linkplan

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // a site's zone must resolve the same on every node, with or without /usr/share/zoneinfo
)

// Clock tells the time. The daemon uses SystemClock; tests a fake.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// FieldError is a parse error in one field of a window or budget
// ("days", "from", "to", "timeZone"); config prefixes its path.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Window is one transfer window, in one of two forms. The weekly form
// (ParseWindow) opens at From on each of its Days, in Loc's local time,
// and closes at To, the same day when To is after From, else the next
// day; its length follows the wall clock, so a window across a DST change
// is an hour shorter or longer. The cron form (ParseCronWindow) opens
// whenever its cron expression matches on Loc's wall clock and stays open
// for a fixed elapsed duration.
type Window struct {
	Days [7]bool // by time.Weekday: the days the window opens on
	From int     // minutes after local midnight, 0–1439
	To   int     // minutes after local midnight, 0–1440; ≤ From: the next day
	Loc  *time.Location
	// Rate caps the link while this window is open, in bytes/s; 0 means
	// the link's own cap.
	Rate int64
	// cron, when set, is the cron form; Days, From and To are unused.
	cron *cronWindow
}

// in reports whether the window is open at t.
func (w Window) in(t time.Time) bool {
	if w.cron != nil {
		return w.cron.in(t, w.Loc)
	}
	in := false
	w.occurrences(t, func(st, e time.Time) {
		in = in || (!t.Before(st) && t.Before(e))
	})
	return in
}

// nextChange is the first time after t at which the window opens or
// closes (zero: not within the days searched).
func (w Window) nextChange(t time.Time) time.Time {
	if w.cron != nil {
		return w.cron.nextChange(t, w.Loc)
	}
	open := w.in(t)
	var bs []time.Time
	w.occurrences(t, func(start, end time.Time) {
		for _, b := range []time.Time{start, end} {
			if b.After(t) {
				bs = append(bs, b)
			}
		}
	})
	sort.Slice(bs, func(i, j int) bool { return bs[i].Before(bs[j]) })
	for _, b := range bs {
		if w.in(b) != open {
			return b
		}
	}
	return time.Time{}
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseWindow parses a window as the edge config writes it: days (nil:
// every day; items "mon"…"sun" or ranges "mon-fri", "fri-mon" wrapping
// over the week; lower case; no day twice), from and to as "HH:MM" on a
// 24-hour clock ("24:00" only as to; to ≤ from runs past midnight; equal
// times are refused: a whole day is "00:00" to "24:00"), and an IANA time
// zone name (empty: defaultZone; "Local" is refused, as it would depend on
// the node). Errors are *FieldError naming the field.
func ParseWindow(days []string, from, to, zone, defaultZone string) (Window, error) {
	var w Window
	var err error
	if w.Days, err = ParseDays(days); err != nil {
		return w, &FieldError{"days", err}
	}
	if w.From, err = parseClock(from, false); err != nil {
		return w, &FieldError{"from", err}
	}
	if w.To, err = parseClock(to, true); err != nil {
		return w, &FieldError{"to", err}
	}
	if w.From == w.To || (w.From == 0 && w.To == 0) {
		return w, &FieldError{"to", fmt.Errorf("%q equals from: a whole day is from \"00:00\" to \"24:00\"", to)}
	}
	if zone == "" {
		zone = defaultZone
	}
	if w.Loc, err = LoadZone(zone); err != nil {
		return w, &FieldError{"timeZone", err}
	}
	return w, nil
}

// LoadZone resolves an IANA time zone name ("Europe/Oslo", "UTC"); empty
// means UTC. "Local" and names with control characters are refused.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, errors.New(`"Local" depends on the node: name the zone (e.g. "Europe/Oslo" or "UTC")`)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x21 || r > 0x7e }) || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, fmt.Errorf("%q is not an IANA time zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone name (e.g. \"Europe/Oslo\")", name)
	}
	return loc, nil
}

// ParseDays parses a list of day names and ranges; nil is every day.
func ParseDays(items []string) ([7]bool, error) {
	var d [7]bool
	if items == nil {
		return [7]bool{true, true, true, true, true, true, true}, nil
	}
	if len(items) == 0 {
		return d, errors.New("empty: leave days out for every day")
	}
	day := func(s string) (int, error) {
		if i := slices.Index(dayNames, s); i >= 0 {
			return i, nil
		}
		return 0, fmt.Errorf("%q is not a day (mon, tue, wed, thu, fri, sat, sun, or a range such as mon-fri)", s)
	}
	for _, it := range items {
		a, b, isRange := strings.Cut(it, "-")
		first, err := day(a)
		if err != nil {
			return d, err
		}
		last := first
		if isRange {
			if last, err = day(b); err != nil {
				return d, err
			}
			if last == first {
				return d, fmt.Errorf("%q: a range needs two different days", it)
			}
		}
		for i := first; ; i = (i + 1) % 7 {
			if d[i] {
				return d, fmt.Errorf("%q: %s is listed twice", it, dayNames[i])
			}
			d[i] = true
			if i == last {
				break
			}
		}
	}
	return d, nil
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string, end bool) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigits(s[:2]) || !isDigits(s[3:]) {
		return 0, fmt.Errorf("%q is not a time of day \"HH:MM\" (24-hour clock)", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if end && h == 24 && m == 0 {
		return 1440, nil
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59%s)", s, map[bool]string{true: ", or 24:00"}[end])
	}
	return h*60 + m, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// occurrence is the window's opening that starts on local date (y, m, d).
func (w Window) occurrence(y int, m time.Month, d int) (start, end time.Time, ok bool) {
	start = time.Date(y, m, d, w.From/60, w.From%60, 0, 0, w.Loc)
	if !w.Days[time.Date(y, m, d, 12, 0, 0, 0, w.Loc).Weekday()] {
		return start, start, false
	}
	ed := d
	if w.To <= w.From {
		ed++
	}
	end = time.Date(y, m, ed, w.To/60, w.To%60, 0, 0, w.Loc)
	return start, end, end.After(start)
}

// occurrences calls f with each opening of w that starts from the local
// day before t to 8 days after it.
func (w Window) occurrences(t time.Time, f func(start, end time.Time)) {
	lt := t.In(w.Loc)
	for off := -1; off <= 8; off++ {
		if s, e, ok := w.occurrence(lt.Year(), lt.Month(), lt.Day()+off); ok {
			f(s, e)
		}
	}
}

// Schedule is the link's weekly plan: a set of windows (none: always
// open) and the link's own cap.
type Schedule struct {
	windows []Window
	rate    int64
}

// NewSchedule returns the schedule of windows ws (none: the link is always
// open) with the link's cap rate in bytes/s (0: none).
func NewSchedule(rate int64, ws ...Window) Schedule {
	return Schedule{windows: append([]Window(nil), ws...), rate: rate}
}

// LinkRate is the link's own cap in bytes/s (0: none).
func (s Schedule) LinkRate() int64 { return s.rate }

// Always reports whether the link is open at all times.
func (s Schedule) Always() bool { return len(s.windows) == 0 }

// State is the link's state at one moment.
type State struct {
	Open bool
	// Rate is the cap in bytes/s while open; 0 means none.
	Rate int64
	// Until is when Open or Rate next changes; zero: never.
	Until time.Time
}

// eval is the state at t, without Until. Where windows overlap, the
// lowest cap among the open ones applies: a crew-hours window with a low
// cap inside an all-day window lowers the cap for those hours.
func (s Schedule) eval(t time.Time) (bool, int64) {
	if s.Always() {
		return true, s.rate
	}
	open, rate := false, int64(0)
	for _, w := range s.windows {
		if !w.in(t) {
			continue
		}
		r := w.Rate
		if r == 0 {
			r = s.rate
		}
		if !open || (r != 0 && (rate == 0 || r < rate)) {
			rate = r
		}
		open = true
	}
	return open, rate
}

// At returns the link's state at t.
func (s Schedule) At(t time.Time) State {
	open, rate := s.eval(t)
	st := State{Open: open, Rate: rate}
	if s.Always() {
		return st
	}
	// Step from one window's change to the next until the state changes;
	// windows that hand over to each other change nothing.
	cur := t
	for range maxAtSteps {
		var b time.Time
		for _, w := range s.windows {
			if c := w.nextChange(cur); !c.IsZero() && (b.IsZero() || c.Before(b)) {
				b = c
			}
		}
		if b.IsZero() {
			return st
		}
		if o, r := s.eval(b); o != open || (o && r != rate) {
			st.Until = b
			return st
		}
		cur = b
	}
	st.Until = cur // a time to look again; the state may hold past it
	return st
}

// maxAtSteps bounds how many changes of single windows At follows without
// a change of the link's state.
const maxAtSteps = 64

// NextOpen returns t when the link is open at t, else when it next opens
// (zero: never, which a valid schedule cannot be).
func (s Schedule) NextOpen(t time.Time) time.Time {
	st := s.At(t)
	if st.Open {
		return t
	}
	return st.Until
}
