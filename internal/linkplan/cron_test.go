package linkplan

import (
	"strings"
	"testing"
	"time"
)

func mustCron(t *testing.T, spec, dur, zone string, rate int64) Window {
	t.Helper()
	w, err := ParseCronWindow(spec, dur, zone, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	w.Rate = rate
	return w
}

func TestParseCronWindowErrors(t *testing.T) {
	for _, tc := range []struct {
		spec, dur, zone string
		field, msg      string
	}{
		{"0 22 * * 1-5", "6h", "Europe/Oslo", "", ""},
		{"0 22 * * mon-fri", "6h", "", "", ""},
		{"*/15 8-20 * * *", "5m", "UTC", "", ""},
		{"@daily", "1h", "", "", ""},
		{"0 0 29 2 *", "24h", "", "", ""},
		{"", "6h", "", "schedule", "empty"},
		{"0 22 * *", "6h", "", "schedule", "not a cron expression"},
		{"0 22 * * * *", "6h", "", "schedule", "not a cron expression"},
		{"60 22 * * *", "6h", "", "schedule", "not a cron expression"},
		{"0 22 * * mon-fry", "6h", "", "schedule", "not a cron expression"},
		{"TZ=Europe/Oslo 0 22 * * *", "6h", "", "schedule", "name the zone in timeZone"},
		{"CRON_TZ=UTC", "6h", "", "schedule", "name the zone in timeZone"},
		{"@every 6h", "1h", "", "schedule", "@every"},
		{"@fortnightly", "1h", "", "schedule", "not a cron expression"},
		{"0 0 30 2 *", "1h", "", "schedule", "never fires"},
		{"0 22 * * *\n", "6h", "", "schedule", "printable"},
		{"0 22 * * *", "", "", "duration", "required"},
		{"0 22 * * *", "6", "", "duration", "not a duration"},
		{"0 22 * * *", "30s", "", "duration", "outside"},
		{"0 22 * * *", "169h", "", "duration", "outside"},
		{"0 22 * * *", "-1h", "", "duration", "outside"},
		{"0 22 * * *", "6h", "Local", "timeZone", "depends on the node"},
		{"0 22 * * *", "6h", "Mars/Olympus", "timeZone", "IANA"},
	} {
		_, err := ParseCronWindow(tc.spec, tc.dur, tc.zone, "UTC")
		if tc.field == "" {
			if err != nil {
				t.Errorf("%q %q %q: %v", tc.spec, tc.dur, tc.zone, err)
			}
			continue
		}
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q %q %q: error %v, want field %s with %q", tc.spec, tc.dur, tc.zone, err, tc.field, tc.msg)
		}
	}
}

// A cron window opens at each match on its zone's wall clock and stays
// open for its duration; it mixes with weekly windows (the lowest cap of
// the open ones applies).
func TestCronScheduleAt(t *testing.T) {
	loc := oslo(t)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	nights := mustCron(t, "0 22 * * mon-fri", "8h", "Europe/Oslo", 2_000_000)
	crew := mustWindow(t, nil, "08:00", "20:00", "Europe/Oslo", 100_000)
	quarter := mustCron(t, "*/15 * * * *", "5m", "Europe/Oslo", 0)
	overlapping := mustCron(t, "0 * * * *", "90m", "Europe/Oslo", 0)
	monthly := mustCron(t, "0 3 1 * *", "2h", "Europe/Oslo", 0)
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
		{"saturday night closed until monday", NewSchedule(0, nights), "2026-12-05 22:00", false, 0, "2026-12-07 22:00"},
		{"with a weekly crew window", NewSchedule(5_000_000, nights, crew), "2026-12-04 12:00", true, 100_000, "2026-12-04 20:00"},
		{"after crew hours, closed until the night", NewSchedule(5_000_000, nights, crew), "2026-12-04 20:00", false, 0, "2026-12-04 22:00"},
		{"every quarter hour: open", NewSchedule(0, quarter), "2026-12-04 12:16", true, 0, "2026-12-04 12:20"},
		{"every quarter hour: closed", NewSchedule(0, quarter), "2026-12-04 12:20", false, 0, "2026-12-04 12:30"},
		{"monthly", NewSchedule(0, monthly), "2026-12-04 12:00", false, 0, "2027-01-01 03:00"},
		{"monthly open", NewSchedule(0, monthly), "2027-01-01 04:59", true, 0, "2027-01-01 05:00"},
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
	// Openings that overlap keep the link open: the state holds past any
	// one of them, and At says when to look again, well ahead.
	st := NewSchedule(0, overlapping).At(at("2026-12-04 12:00"))
	if !st.Open || (!st.Until.IsZero() && st.Until.Before(at("2026-12-10 00:00"))) {
		t.Errorf("overlapping openings: %+v", st)
	}
}

// Cron windows on the nights the clocks change in their zone (Oslo,
// 2026-03-29 02:00 → 03:00 and 2026-10-25 03:00 → 02:00), driven by a fake
// clock through Plan.Decide: starts keep to the wall clock, the duration is
// elapsed time, a start in the skipped hour opens the same elapsed time
// after midnight, and one in the repeated hour opens once.
func TestCronScheduleDST(t *testing.T) {
	loc := oslo(t)
	local := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	utc := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	clk := &fakeClock{}
	for _, tc := range []struct {
		name, spec, dur string
		from            time.Time // the clock before the opening
		opens, closes   time.Time // UTC
	}{
		{"22:00 the evening before spring", "0 22 * * *", "6h", local("2026-03-28 12:00"), utc("2026-03-28 21:00"), utc("2026-03-29 03:00")},
		{"01:00 on the spring night", "0 1 * * *", "3h", local("2026-03-29 00:00"), utc("2026-03-29 00:00"), utc("2026-03-29 03:00")},
		{"02:30 skipped in spring: opens 30m after the jump", "30 2 * * *", "1h", local("2026-03-29 00:00"), utc("2026-03-29 01:30"), utc("2026-03-29 02:30")},
		{"03:00 after the spring jump", "0 3 * * *", "1h", local("2026-03-29 00:00"), utc("2026-03-29 01:00"), utc("2026-03-29 02:00")},
		{"22:00 the evening before autumn", "0 22 * * *", "6h", local("2026-10-24 12:00"), utc("2026-10-24 20:00"), utc("2026-10-25 02:00")},
		{"04:00 after the autumn change is CET", "0 4 * * *", "1h", local("2026-10-25 00:00"), utc("2026-10-25 03:00"), utc("2026-10-25 04:00")},
	} {
		p := &Plan{Clock: clk, Schedule: NewSchedule(0, mustCron(t, tc.spec, tc.dur, "Europe/Oslo", 0))}
		clk.Set(tc.from)
		d := p.Decide(Override{})
		if d.OK || !d.Until.Equal(tc.opens) {
			t.Errorf("%s: before: %+v, want closed until %v", tc.name, d, tc.opens)
			continue
		}
		clk.Set(d.Until)
		if d := p.Decide(Override{}); !d.OK {
			t.Errorf("%s: at %v: %+v, want open", tc.name, tc.opens, d)
		}
		if st := p.Schedule.At(clk.Now()); !st.Until.Equal(tc.closes) {
			t.Errorf("%s: open until %v, want %v", tc.name, st.Until.UTC(), tc.closes)
		}
		clk.Set(tc.closes.Add(-time.Second))
		if d := p.Decide(Override{}); !d.OK {
			t.Errorf("%s: a second before closing: %+v", tc.name, d)
		}
		clk.Set(tc.closes)
		if d := p.Decide(Override{}); d.OK {
			t.Errorf("%s: at closing: %+v, want closed", tc.name, d)
		}
	}
	// 02:30 repeats on the autumn night: the window opens once, then next
	// on the 26th.
	s := NewSchedule(0, mustCron(t, "30 2 * * *", "20m", "Europe/Oslo", 0))
	first := s.NextOpen(local("2026-10-25 00:00"))
	second := s.NextOpen(s.At(first).Until)
	if first.In(loc).Format("15:04") != "02:30" || second.In(loc).Format("2006-01-02 15:04") != "2026-10-26 02:30" {
		t.Errorf("repeated hour: opens %v then %v, want once on the 25th at 02:30 and next on the 26th", first.In(loc), second.In(loc))
	}
}

// The forecast runs through cron windows as through weekly ones.
func TestForecastCronWindows(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)} // a Friday
	p := &Plan{Clock: clk, Schedule: NewSchedule(0, mustCron(t, "0 22 * * mon-fri", "1h", "UTC", 1000))}
	// 3.6 MB at 1000 B/s fills one window: Friday's, then Monday's.
	eta := p.Forecast(0, []int64{3_600_000, 3_600_000})
	want := []time.Time{time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)}
	for i := range want {
		if !eta[i].Equal(want[i]) {
			t.Errorf("eta[%d] = %v, want %v", i, eta[i], want[i])
		}
	}
}

// FuzzParseCronWindow: no panic; an error is a FieldError; an accepted
// window answers At and NextOpen within its search bound.
func FuzzParseCronWindow(f *testing.F) {
	f.Add("0 22 * * mon-fri", "6h", "Europe/Oslo")
	f.Add("*/15 8-20 * * *", "5m", "UTC")
	f.Add("@weekly", "24h", "America/New_York")
	f.Add("TZ=", "1h", "")
	f.Add("0 0 30 2 *", "1h", "")
	f.Add("1-5/0 * * * *", "1h", "")
	f.Fuzz(func(t *testing.T, spec, dur, zone string) {
		w, err := ParseCronWindow(spec, dur, zone, "UTC")
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T %v is not a FieldError", err, err)
			}
			return
		}
		now := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
		s := NewSchedule(0, w)
		st := s.At(now)
		if o := s.NextOpen(now); o.IsZero() && !st.Open {
			t.Fatalf("%q never opens after %v", spec, now)
		}
	})
}
