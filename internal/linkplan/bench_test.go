package linkplan

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkLedgerCharge32K: the cost sync pays per 32 KiB read with a
// budget set (the file is rewritten, with fsync, once per persistAhead).
// Compare with BenchmarkScheduleAt, the per-state-change cost of windows.
func BenchmarkLedgerCharge32K(b *testing.B) {
	clk := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	l, err := OpenLedger(filepath.Join(b.TempDir(), "l.json"), Budget{Month: 1 << 60}, clk)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(32 << 10)
	for b.Loop() {
		if err := l.Charge(32 << 10); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScheduleAt(b *testing.B) {
	loc, _ := LoadZone("Europe/Oslo")
	w1, _ := ParseWindow([]string{"mon-fri"}, "22:00", "06:00", "", "Europe/Oslo")
	w2, _ := ParseWindow(nil, "08:00", "20:00", "", "Europe/Oslo")
	s := NewSchedule(0, w1, w2)
	t := time.Date(2026, 12, 4, 12, 0, 0, 0, loc)
	for b.Loop() {
		s.At(t)
	}
}

// BenchmarkScheduleAtCron: At over cron windows, a nightly one and, the
// worst case, one opening every minute for two (openings that overlap
// forever: At follows them to its step bound). Compare with
// BenchmarkScheduleAt.
func BenchmarkScheduleAtCron(b *testing.B) {
	loc, _ := LoadZone("Europe/Oslo")
	t := time.Date(2026, 12, 4, 12, 0, 30, 0, loc)
	for _, c := range []struct{ name, spec, dur string }{{"nightly", "0 22 * * mon-fri", "8h"}, {"every-minute", "* * * * *", "2m"}} {
		w, err := ParseCronWindow(c.spec, c.dur, "", "Europe/Oslo")
		if err != nil {
			b.Fatal(err)
		}
		s := NewSchedule(0, w)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				s.At(t)
			}
		})
	}
}
