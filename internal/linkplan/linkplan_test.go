package linkplan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func oslo(t *testing.T) *time.Location {
	loc, err := LoadZone("Europe/Oslo")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustWindow(t *testing.T, days []string, from, to, zone string, rate int64) Window {
	t.Helper()
	w, err := ParseWindow(days, from, to, zone, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	w.Rate = rate
	return w
}

func TestParseWindowErrors(t *testing.T) {
	for _, tc := range []struct {
		days           []string
		from, to, zone string
		field, msg     string
	}{
		{nil, "22:00", "06:00", "Europe/Oslo", "", ""},
		{[]string{"mon-fri"}, "00:00", "24:00", "", "", ""},
		{[]string{"fri-mon", "wed"}, "08:00", "09:30", "UTC", "", ""},
		{[]string{}, "22:00", "06:00", "", "days", "empty"},
		{[]string{"Mon"}, "22:00", "06:00", "", "days", "not a day"},
		{[]string{"mon-mon"}, "22:00", "06:00", "", "days", "two different days"},
		{[]string{"mon-fri", "wed"}, "22:00", "06:00", "", "days", "wed is listed twice"},
		{[]string{"monday"}, "22:00", "06:00", "", "days", "not a day"},
		{nil, "22", "06:00", "", "from", "HH:MM"},
		{nil, "24:00", "06:00", "", "from", "not a time of day"},
		{nil, "7:00", "08:00", "", "from", "HH:MM"},
		{nil, "22:00", "06:60", "", "to", "not a time of day"},
		{nil, "22:00", "22:00", "", "to", "equals from"},
		{nil, "00:00", "00:00", "", "to", "equals from"},
		{nil, "22:00", "06:00", "Mars/Olympus", "timeZone", "IANA"},
		{nil, "22:00", "06:00", "Local", "timeZone", "depends on the node"},
		{nil, "22:00", "06:00", "../etc/passwd", "timeZone", "IANA"},
		{nil, "22:00", "06:00", "Europe/Oslo\n", "timeZone", "IANA"},
	} {
		_, err := ParseWindow(tc.days, tc.from, tc.to, tc.zone, "UTC")
		if tc.field == "" {
			if err != nil {
				t.Errorf("%v %s-%s %s: %v", tc.days, tc.from, tc.to, tc.zone, err)
			}
			continue
		}
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v %s-%s %q: error %v, want field %s with %q", tc.days, tc.from, tc.to, tc.zone, err, tc.field, tc.msg)
		}
	}
}

func TestScheduleAt(t *testing.T) {
	loc := oslo(t)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	nights := mustWindow(t, []string{"mon-fri"}, "22:00", "06:00", "Europe/Oslo", 2_000_000)
	crew := mustWindow(t, nil, "08:00", "20:00", "Europe/Oslo", 100_000)
	allDay := mustWindow(t, nil, "00:00", "24:00", "Europe/Oslo", 0)
	for _, tc := range []struct {
		name  string
		s     Schedule
		t     string
		open  bool
		rate  int64
		until string
	}{
		// 2026-12-04 is a Friday.
		{"friday night opens", NewSchedule(0, nights), "2026-12-04 22:00", true, 2_000_000, "2026-12-05 06:00"},
		{"friday evening closed", NewSchedule(0, nights), "2026-12-04 21:59", false, 0, "2026-12-04 22:00"},
		{"saturday early runs on from friday", NewSchedule(0, nights), "2026-12-05 05:59", true, 2_000_000, "2026-12-05 06:00"},
		{"saturday night closed until monday", NewSchedule(0, nights), "2026-12-05 23:00", false, 0, "2026-12-07 22:00"},
		{"monday early is sunday's: closed", NewSchedule(0, nights), "2026-12-07 03:00", false, 0, "2026-12-07 22:00"},
		{"crew hours lower the cap", NewSchedule(5_000_000, allDay, crew), "2026-12-04 12:00", true, 100_000, "2026-12-04 20:00"},
		{"outside crew hours the link's cap", NewSchedule(5_000_000, allDay, crew), "2026-12-04 20:00", true, 5_000_000, "2026-12-05 08:00"},
		{"no windows: always", NewSchedule(7, nil...), "2026-12-04 12:00", true, 7, ""},
	} {
		st := tc.s.At(at(tc.t))
		var until string
		if !st.Until.IsZero() {
			until = st.Until.In(loc).Format("2006-01-02 15:04")
		}
		if st.Open != tc.open || st.Rate != tc.rate || until != tc.until {
			t.Errorf("%s: At(%s) = open %v rate %d until %q; want %v %d %q", tc.name, tc.t, st.Open, st.Rate, until, tc.open, tc.rate, tc.until)
		}
	}
}

// The window follows the wall clock across DST changes in its zone: on
// the night the clocks go forward it is an hour shorter, on the night
// they go back an hour longer, and it opens at 01:00 local time on both.
func TestScheduleDST(t *testing.T) {
	loc := oslo(t)
	w := mustWindow(t, nil, "01:00", "05:00", "Europe/Oslo", 0)
	s := NewSchedule(0, w)
	for _, tc := range []struct {
		day  string
		want time.Duration
	}{
		{"2026-03-28", 4 * time.Hour},
		{"2026-03-29", 3 * time.Hour}, // 02:00 → 03:00
		{"2026-10-25", 5 * time.Hour}, // 03:00 → 02:00
		{"2026-10-26", 4 * time.Hour},
	} {
		d, _ := time.ParseInLocation("2006-01-02", tc.day, loc)
		open := s.NextOpen(d)
		if got := open.In(loc).Format("15:04"); got != "01:00" {
			t.Errorf("%s: opens at %s local, want 01:00", tc.day, got)
		}
		st := s.At(open)
		if !st.Open || st.Until.Sub(open) != tc.want {
			t.Errorf("%s: open %v for %v, want %v", tc.day, st.Open, st.Until.Sub(open), tc.want)
		}
	}
	// A window starting inside the skipped hour still opens that night.
	gap := NewSchedule(0, mustWindow(t, nil, "02:30", "04:00", "Europe/Oslo", 0))
	d, _ := time.ParseInLocation("2006-01-02 15:04", "2026-03-29 00:00", loc)
	o := gap.NextOpen(d)
	if o.Sub(d) > 4*time.Hour || o.Sub(d) < time.Hour {
		t.Errorf("window in the skipped hour opens at %v", o.In(loc))
	}
}

func TestLedgerRolloverAndRestart(t *testing.T) {
	loc := oslo(t)
	clk := &fakeClock{t: time.Date(2026, 12, 4, 23, 0, 0, 0, loc)} // a Friday
	path := filepath.Join(t.TempDir(), "state", "link-budget.json")
	b := Budget{Day: 10 << 20, Month: 25 << 20, Loc: loc}
	l, err := OpenLedger(path, b, clk)
	if err != nil {
		t.Fatal(err)
	}
	if left, lim := l.Left(); !lim || left != 10<<20 {
		t.Fatalf("left %d %v", left, lim)
	}
	if err := l.Charge(4 << 20); err != nil {
		t.Fatal(err)
	}
	// A crash before a flush: the file holds at least what was counted.
	l2, err := OpenLedger(path, b, clk)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := l2.Left(); left > 6<<20 || left < 6<<20-persistAhead {
		t.Fatalf("after a crash: left %d, want between %d and %d", left, 6<<20-persistAhead, 6<<20)
	}
	if err := l.Charge(6 << 20); err != nil {
		t.Fatal(err)
	}
	if left, _ := l.Left(); left != 0 {
		t.Fatalf("left %d after spending the day", left)
	}
	if at := l.RefillAt(); !at.Equal(time.Date(2026, 12, 5, 0, 0, 0, 0, loc)) {
		t.Fatalf("refill at %v, want local midnight", at)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	// Restart after midnight: the day rolled over, the month did not.
	clk.Set(time.Date(2026, 12, 5, 0, 0, 1, 0, loc))
	l3, err := OpenLedger(path, b, clk)
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := l3.Left(); left != 10<<20 {
		t.Fatalf("new day: left %d", left)
	}
	_ = l3.Charge(10 << 20)
	clk.Set(time.Date(2026, 12, 6, 0, 0, 1, 0, loc))
	if left, _ := l3.Left(); left != 5<<20 {
		t.Fatalf("month nearly spent: left %d, want 5 MiB", left)
	}
	_ = l3.Charge(5 << 20)
	if at := l3.RefillAt(); !at.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, loc)) {
		t.Fatalf("month spent: refill at %v", at)
	}
	// A damaged file is an error, never a fresh budget.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(path, b, clk); err == nil {
		t.Fatal("damaged ledger opened")
	}
}

func TestPeriodsAcrossDST(t *testing.T) {
	loc := oslo(t)
	at := time.Date(2026, 3, 29, 12, 0, 0, 0, loc) // the day clocks go forward
	if s, e := PeriodStart(Day, at, loc), PeriodEnd(Day, at, loc); e.Sub(s) != 23*time.Hour {
		t.Errorf("day of 29 March: %v", e.Sub(s))
	}
	if s := PeriodStart(Week, at, loc); s.Weekday() != time.Monday || s.Day() != 23 {
		t.Errorf("week start %v", s)
	}
	if e := PeriodEnd(Month, at, loc); !e.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, loc)) {
		t.Errorf("month end %v", e)
	}
}

func TestOrder(t *testing.T) {
	cs := []Candidate{
		{Repo: "a", Revision: "a-old", Tier: TierRest, Weight: 1, Depth: 2, Index: 0},
		{Repo: "a", Revision: "a-tip", Tier: TierNewest, Weight: 1, Index: 1},
		{Repo: "b", Revision: "b-tip", Tier: TierNewest, Weight: 5, Index: 2},
		{Repo: "a", Revision: "a-deployed", Tier: TierRollback, Weight: 1, Depth: 3, Index: 3},
		{Repo: "b", Revision: "b-hist", Tier: TierRest, Weight: 5, Depth: 1, Index: 4},
		{Repo: "a", Revision: "a-waited", Tier: TierWaiting, Weight: 1, Depth: 4, Index: 5},
	}
	var got []string
	for _, c := range Order(cs) {
		got = append(got, c.Revision)
	}
	want := "a-waited b-tip a-tip a-deployed b-hist a-old"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestForecast(t *testing.T) {
	loc := time.UTC
	clk := &fakeClock{t: time.Date(2026, 12, 4, 20, 0, 0, 0, loc)} // Friday 20:00
	nights := mustWindow(t, nil, "22:00", "06:00", "UTC", 1000)
	p := &Plan{Clock: clk, Schedule: NewSchedule(0, nights)}
	// 3600 bytes at 1000 B/s inside the window: from 22:00, 3.6 s.
	got := p.Forecast(0, []int64{3600, 0, 1000})
	want := []time.Time{clk.t.Add(2*time.Hour + 3600*time.Millisecond), clk.t.Add(2*time.Hour + 3600*time.Millisecond), clk.t.Add(2*time.Hour + 4600*time.Millisecond)}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("rev %d: %v, want %v", i, got[i], want[i])
		}
	}
	// A measured rate below the cap wins.
	if got := p.Forecast(500, []int64{1000}); !got[0].Equal(clk.t.Add(2*time.Hour + 2*time.Second)) {
		t.Errorf("at 500 B/s: %v", got[0])
	}
	// A budget of 8 h × 1000 B/s per day, nearly spent: the rest waits
	// for tomorrow's window after midnight's reset... which is inside the
	// same night's window (00:00–06:00).
	l, err := OpenLedger(filepath.Join(t.TempDir(), "l.json"), Budget{Day: 2000, Loc: loc}, clk)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Charge(1500)
	p.Ledger = l
	got = p.Forecast(0, []int64{1000})
	if w := time.Date(2026, 12, 5, 0, 0, 0, 500_000_000, loc); !got[0].Equal(w) {
		t.Errorf("with budget: %v, want %v", got[0], w)
	}
	// No rate known and no cap: no forecast.
	p2 := &Plan{Clock: clk, Schedule: NewSchedule(0)}
	if got := p2.Forecast(0, []int64{1}); !got[0].IsZero() {
		t.Errorf("no rate: %v", got[0])
	}
}

func TestDecide(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	l, _ := OpenLedger(filepath.Join(t.TempDir(), "l.json"), Budget{Day: 100}, clk)
	p := &Plan{Clock: clk, Schedule: NewSchedule(50, mustWindow(t, nil, "22:00", "06:00", "UTC", 0)), Ledger: l}
	if d := p.Decide(Override{}); d.OK || d.Reason != "window closed" || d.Until.Hour() != 22 {
		t.Errorf("closed: %+v", d)
	}
	if d := p.Decide(Override{Window: true}); !d.OK || d.Rate != 50 {
		t.Errorf("override: %+v", d)
	}
	_ = l.Charge(100)
	if d := p.Decide(Override{Window: true}); d.OK || d.Reason != "budget spent" {
		t.Errorf("spent: %+v", d)
	}
	if d := p.Decide(Override{Window: true, Budget: true}); !d.OK {
		t.Errorf("both overridden: %+v", d)
	}
}

// FuzzParseWindow: no panic; an accepted window has sane bounds and opens
// within a week.
func FuzzParseWindow(f *testing.F) {
	f.Add("mon-fri", "22:00", "06:00", "Europe/Oslo")
	f.Add("sat,sun", "00:00", "24:00", "UTC")
	f.Add("fri-mon", "23:59", "00:01", "America/New_York")
	f.Add("", "24:00", "7:00", "Local")
	f.Fuzz(func(t *testing.T, days, from, to, zone string) {
		var ds []string
		if days != "" {
			ds = strings.Split(days, ",")
		}
		w, err := ParseWindow(ds, from, to, zone, "UTC")
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T %v is not a FieldError", err, err)
			}
			return
		}
		if w.From < 0 || w.From > 1439 || w.To < 0 || w.To > 1440 || w.From == w.To {
			t.Fatalf("bounds %d-%d", w.From, w.To)
		}
		now := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
		if o := NewSchedule(0, w).NextOpen(now); o.IsZero() || o.Sub(now) > 8*24*time.Hour {
			t.Fatalf("next open %v", o)
		}
	})
}

func TestGitPollAllowed(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	s := NewSchedule(0, mustWindow(t, nil, "22:00", "06:00", "UTC", 0))
	if p := (&Plan{Clock: clk, Schedule: s, GitPollOutsideWindows: true}); !p.GitPollAllowed() {
		t.Error("default: polls outside windows")
	}
	p := &Plan{Clock: clk, Schedule: s}
	if p.GitPollAllowed() {
		t.Error("gitPollOutsideWindows false: polled at noon")
	}
	clk.Set(time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC))
	if !p.GitPollAllowed() {
		t.Error("no poll inside the window")
	}
}

// FuzzOpenLedger: a ledger file of any content opens or is refused with
// ErrLedger; never a panic, never a negative count.
func FuzzOpenLedger(f *testing.F) {
	f.Add([]byte(`{"version":1,"periods":{"day":{"start":"2026-12-04T00:00:00Z","used":5}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"periods":{"day":null}}`))
	f.Add([]byte(`{"version":1,"periods":{"day":{"used":-1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "l.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
		l, err := OpenLedger(path, Budget{Day: 10, Week: 100}, clk)
		if err != nil {
			if !errors.Is(err, ErrLedger) {
				t.Fatalf("error %v is not ErrLedger", err)
			}
			return
		}
		if left, _ := l.Left(); left < 0 || left > 10 {
			t.Fatalf("left %d", left)
		}
	})
}

// NextUse is now while the link may be used, else the next window's
// opening or the budget's refill, whichever is later.
func TestNextUse(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	l, _ := OpenLedger(filepath.Join(t.TempDir(), "l.json"), Budget{Day: 100}, clk)
	p := &Plan{Clock: clk, Schedule: NewSchedule(0, mustWindow(t, nil, "22:00", "06:00", "UTC", 0)), Ledger: l}
	if got, want := p.NextUse(), time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("window closed: %v, want %v", got, want)
	}
	clk.Set(time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC))
	if got := p.NextUse(); !got.Equal(clk.Now()) {
		t.Errorf("window open: %v, want now", got)
	}
	_ = l.Charge(100)
	if got, want := p.NextUse(), time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("budget spent: %v, want the refill %v", got, want)
	}
	clk.Set(time.Date(2026, 12, 5, 5, 0, 0, 0, time.UTC))
	_ = l.Charge(100)
	if got, want := p.NextUse(), time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("budget spent all day: %v, want the refill inside the next window %v", got, want)
	}
}
