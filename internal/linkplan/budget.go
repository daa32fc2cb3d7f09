package linkplan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// Period is a budget period.
type Period string

// Budget periods. Each starts at local midnight in the budget's zone: a
// day every day, a week on Monday, a month on the 1st.
const (
	Day   Period = "day"
	Week  Period = "week"
	Month Period = "month"
)

var periods = []Period{Day, Week, Month}

// Budget is how many bytes the link may carry per period; 0 is no limit
// for that period. Every limited period applies: what is left is the
// least left over them.
type Budget struct {
	Day, Week, Month int64
	Loc              *time.Location // period boundaries; nil is UTC
}

// IsZero reports a budget with no limit.
func (b Budget) IsZero() bool { return b.Day == 0 && b.Week == 0 && b.Month == 0 }

func (b Budget) limit(p Period) int64 {
	switch p {
	case Day:
		return b.Day
	case Week:
		return b.Week
	default:
		return b.Month
	}
}

func (b Budget) loc() *time.Location {
	if b.Loc == nil {
		return time.UTC
	}
	return b.Loc
}

// PeriodStart returns the start of the period p holding t, in loc.
func PeriodStart(p Period, t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	y, m, d := lt.Date()
	switch p {
	case Week:
		d -= (int(lt.Weekday()) + 6) % 7 // back to Monday
	case Month:
		d = 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// PeriodEnd returns the start of the period after the one holding t.
func PeriodEnd(p Period, t time.Time, loc *time.Location) time.Time {
	s := PeriodStart(p, t, loc)
	switch p {
	case Day:
		return time.Date(s.Year(), s.Month(), s.Day()+1, 0, 0, 0, 0, loc)
	case Week:
		return time.Date(s.Year(), s.Month(), s.Day()+7, 0, 0, 0, 0, loc)
	default:
		return time.Date(s.Year(), s.Month()+1, 1, 0, 0, 0, 0, loc)
	}
}

// persistAhead is the least the recorded use runs ahead of the bytes
// counted so far: the file is rewritten (with fsync) once per step, and a
// crash over-counts by less than a step, never under-counts. The step is
// 1% of the smallest limit, at least persistAhead, at most maxPersistAhead:
// an fsync per MiB would cap a fast link near 200 MB/s.
const (
	persistAhead    = 1 << 20
	maxPersistAhead = 64 << 20
)

// step is how far ahead the ledger records use.
func (b Budget) step() int64 {
	least := int64(0)
	for _, p := range periods {
		if l := b.limit(p); l > 0 && (least == 0 || l < least) {
			least = l
		}
	}
	return min(max(least/100, persistAhead), maxPersistAhead)
}

// ledgerFile is the ledger's file format (version 1).
type ledgerFile struct {
	Version int                    `json:"version"`
	Periods map[Period]*periodUsed `json:"periods"`
}

type periodUsed struct {
	Start time.Time `json:"start"`
	Used  int64     `json:"used"`
}

// Usage is one limited period's account.
type Usage struct {
	Period   Period    `json:"period"`
	Limit    int64     `json:"limitBytes"`
	Used     int64     `json:"usedBytes"`
	Left     int64     `json:"leftBytes"`
	Start    time.Time `json:"start"`
	ResetsAt time.Time `json:"resetsAt"`
}

// Ledger counts the bytes the link carried in each budget period. It is
// kept in one JSON file, replaced atomically (internal/atomicfile), so it
// survives a crash or kill -9 at any point, recording use a step ahead of
// the count (1% of the smallest limit, 1 to 64 MiB) so a crash never gives
// bytes back; periods roll over by the clock when read or charged. It is
// safe for concurrent use.
type Ledger struct {
	path   string
	budget Budget
	clock  Clock

	mu        sync.Mutex
	used      map[Period]*periodUsed // counted
	persisted map[Period]int64       // recorded on disk, ≥ used
}

// ErrLedger wraps a ledger file that cannot be read: it is never
// silently reset, as that would hand out a fresh budget.
var ErrLedger = errors.New("budget ledger")

// OpenLedger loads the ledger at path (missing: nothing used yet) for
// budget b, reading the time from clock.
func OpenLedger(path string, b Budget, clock Clock) (*Ledger, error) {
	l := &Ledger{path: path, budget: b, clock: clock, used: map[Period]*periodUsed{}, persisted: map[Period]int64{}}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrLedger, err)
	default:
		var f ledgerFile
		if err := json.Unmarshal(raw, &f); err != nil || f.Version != 1 {
			return nil, fmt.Errorf("%w %s: unreadable (version %d, %v): move it away to start the budget afresh", ErrLedger, path, f.Version, err)
		}
		for p, u := range f.Periods {
			if u == nil || u.Used < 0 {
				return nil, fmt.Errorf("%w %s: malformed period %q", ErrLedger, path, p)
			}
			l.used[p] = &periodUsed{Start: u.Start, Used: u.Used}
			l.persisted[p] = u.Used
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollLocked(clock.Now())
	return l, nil
}

// Budget returns the ledger's budget.
func (l *Ledger) Budget() Budget { return l.budget }

// rollLocked starts a fresh count for every period whose start has moved.
func (l *Ledger) rollLocked(now time.Time) {
	for _, p := range periods {
		start := PeriodStart(p, now, l.budget.loc())
		u := l.used[p]
		if u == nil || !u.Start.Equal(start) {
			l.used[p] = &periodUsed{Start: start}
			l.persisted[p] = 0
		}
	}
}

// Charge records n bytes carried by the link now. It writes the file when
// the count passes what was recorded (then recording persistAhead more).
func (l *Ledger) Charge(n int64) error {
	if n <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollLocked(l.clock.Now())
	write := false
	for _, p := range periods {
		l.used[p].Used += n
		if l.used[p].Used > l.persisted[p] {
			write = true
		}
	}
	if !write {
		return nil
	}
	return l.writeLocked(l.budget.step())
}

// Flush records the exact count (end of a pass, shutdown).
func (l *Ledger) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeLocked(0)
}

func (l *Ledger) writeLocked(ahead int64) error {
	f := ledgerFile{Version: 1, Periods: map[Period]*periodUsed{}}
	for _, p := range periods {
		u := l.used[p]
		f.Periods[p] = &periodUsed{Start: u.Start.UTC(), Used: u.Used + ahead}
	}
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o750); err != nil {
		return fmt.Errorf("%w: %w", ErrLedger, err)
	}
	if err := atomicfile.WriteFile(l.path, raw, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrLedger, err)
	}
	for _, p := range periods {
		l.persisted[p] = l.used[p].Used + ahead
	}
	return nil
}

// Left returns the bytes the link may still carry now: the least left
// over the limited periods (never negative), and false when no period is
// limited.
func (l *Ledger) Left() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rollLocked(l.clock.Now())
	return l.leftLocked()
}

func (l *Ledger) leftLocked() (int64, bool) {
	left, limited := int64(0), false
	for _, p := range periods {
		lim := l.budget.limit(p)
		if lim == 0 {
			continue
		}
		x := max(lim-l.used[p].Used, 0)
		if !limited || x < left {
			left = x
		}
		limited = true
	}
	return left, limited
}

// Usage lists the limited periods' accounts now.
func (l *Ledger) Usage() []Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.rollLocked(now)
	var out []Usage
	for _, p := range periods {
		lim := l.budget.limit(p)
		if lim == 0 {
			continue
		}
		u := l.used[p]
		out = append(out, Usage{Period: p, Limit: lim, Used: u.Used, Left: max(lim-u.Used, 0),
			Start: u.Start, ResetsAt: PeriodEnd(p, now, l.budget.loc())})
	}
	return out
}

// RefillAt returns when bytes are next allowed once the budget is spent:
// the latest reset among the exhausted periods (zero when some budget is
// left or none is limited).
func (l *Ledger) RefillAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.rollLocked(now)
	if left, limited := l.leftLocked(); !limited || left > 0 {
		return time.Time{}
	}
	var at time.Time
	for _, p := range periods {
		lim := l.budget.limit(p)
		if lim != 0 && l.used[p].Used >= lim {
			if e := PeriodEnd(p, now, l.budget.loc()); e.After(at) {
				at = e
			}
		}
	}
	return at
}
