package edge

import (
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/linkplan"
)

// The fleet document carries the tightest budget period, named in the
// budget's zone, its use in steps of 1% of the limit (at least 1 MB).
func TestFleetBudget(t *testing.T) {
	if fleetBudget(nil, nil) != nil {
		t.Fatal("a budget without periods")
	}
	oslo, _ := time.LoadLocation("Europe/Oslo")
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, oslo) // 2026-12-03T23:00Z
	us := []linkplan.Usage{
		{Period: linkplan.Day, Limit: 500_000_000, Used: 123_456_789, Left: 376_543_211, Start: day.UTC()},
		{Period: linkplan.Month, Limit: 10_000_000_000, Used: 9_800_000_000, Left: 200_000_000, Start: time.Date(2026, 12, 1, 0, 0, 0, 0, oslo).UTC()},
	}
	b := fleetBudget(us, oslo)
	if b.Period != "month 2026-12" || b.LimitBytes != 10_000_000_000 || b.UsedBytes != 9_800_000_000 {
		t.Errorf("tightest: %+v", b)
	}
	b = fleetBudget(us[:1], oslo)
	if b.Period != "day 2026-12-04" || b.UsedBytes != 120_000_000 {
		t.Errorf("day, rounded down to 5 MB steps: %+v", b)
	}
	if b := fleetBudget([]linkplan.Usage{{Period: linkplan.Week, Limit: 10_000_000, Used: 2_500_000, Left: 7_500_000, Start: day}}, oslo); b.UsedBytes != 2_000_000 || b.Period != "week 2026-12-04" {
		t.Errorf("week, 1 MB steps: %+v", b)
	}
	if got := roundUp(time.Date(2026, 12, 4, 3, 1, 0, 0, time.UTC), 15*time.Minute); !got.Equal(time.Date(2026, 12, 4, 3, 15, 0, 0, time.UTC)) {
		t.Errorf("roundUp: %v", got)
	}
}
