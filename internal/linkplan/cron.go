package linkplan

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronWindow is a window written in the cron form: it opens at each time
// its schedule matches, on the wall clock of its zone, and stays open for
// a fixed elapsed duration.
type cronWindow struct {
	spec *cron.SpecSchedule // the parsed fields; its Location is unused
	dur  time.Duration
}

// MinCronDuration and MaxCronDuration bound a cron window's length.
const (
	MinCronDuration = time.Minute
	MaxCronDuration = 7 * 24 * time.Hour
)

// cronParser reads the five standard fields (minute, hour, day of month,
// month, day of week) and the descriptors @yearly, @monthly, @weekly,
// @daily and @hourly; robfig/cron's grammar (names such as "mon-fri",
// "jan", ranges, lists and steps "*/15").
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronSearchDays bounds every search for a start: five years, so a
// window on 29 February is found and one on 30 February never is.
const cronSearchDays = 5*366 + 2

// ParseCronWindow parses a window in the cron form: schedule is a
// standard five-field cron expression ("0 22 * * mon-fri": at 22:00 on
// weekdays) or one of @yearly, @monthly, @weekly, @daily, @hourly, read
// on the wall clock of zone (empty: defaultZone); duration is how long
// each opening lasts, a Go duration from 1m to 168h. A zone prefix in the
// expression (TZ=…) and @every are refused: the zone is its own field, and
// a window needs fixed times. A schedule that never fires (30 February)
// is refused. Errors are *FieldError naming "schedule", "duration" or
// "timeZone".
//
// Daylight saving time: each start is the local time the expression
// names, on the day it names; a start in the hour the clocks skip opens
// at the same elapsed time after the previous midnight (02:30 becomes
// 03:30 the night clocks go forward), a start in the hour that repeats
// opens once. The duration is elapsed time, so a 6h window across a
// change ends at a local time one hour earlier or later.
func ParseCronWindow(schedule, duration, zone, defaultZone string) (Window, error) {
	var w Window
	spec, err := parseCron(schedule)
	if err != nil {
		return w, &FieldError{"schedule", err}
	}
	d, err := time.ParseDuration(duration)
	switch {
	case duration == "":
		return w, &FieldError{"duration", errors.New("required with schedule (e.g. \"6h\")")}
	case err != nil:
		return w, &FieldError{"duration", fmt.Errorf("%q is not a duration such as \"6h\" or \"90m\"", duration)}
	case d < MinCronDuration || d > MaxCronDuration:
		return w, &FieldError{"duration", fmt.Errorf("%s is outside 1m to 168h", duration)}
	}
	if zone == "" {
		zone = defaultZone
	}
	if w.Loc, err = LoadZone(zone); err != nil {
		return w, &FieldError{"timeZone", err}
	}
	w.cron = &cronWindow{spec: spec, dur: d}
	if w.cron.nextStart(time.Date(2000, 1, 1, 0, 0, 0, 0, w.Loc), w.Loc).IsZero() {
		return w, &FieldError{"schedule", fmt.Errorf("%q never fires (no such day)", schedule)}
	}
	return w, nil
}

// parseCron parses a cron expression with the bounds ParseCronWindow
// documents.
func parseCron(s string) (spec *cron.SpecSchedule, err error) {
	if s == "" {
		return nil, errors.New(`empty: a cron expression such as "0 22 * * mon-fri"`)
	}
	if len(s) > 200 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return nil, errors.New("not a cron expression (printable ASCII, at most 200 characters)")
	}
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return nil, fmt.Errorf("%q: name the zone in timeZone, not in the expression", s)
	}
	if strings.HasPrefix(t, "@every") {
		return nil, fmt.Errorf("%q: @every has no fixed start; write the times (e.g. \"0 */6 * * *\")", s)
	}
	defer func() {
		if r := recover(); r != nil { // the parser must never take the daemon down
			spec, err = nil, fmt.Errorf("%q is not a cron expression", s)
		}
	}()
	sch, err := cronParser.Parse(t)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (minute hour day-of-month month day-of-week): %v", s, err)
	}
	sp, ok := sch.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%q is not a cron expression with fixed times", s)
	}
	return sp, nil
}

// dayMatches applies cron's rule for a day: when either the day of month
// or the day of week is "*", both must match; otherwise either may.
func (c *cronWindow) dayMatches(y int, m time.Month, d int, loc *time.Location) bool {
	if c.spec.Month&(1<<uint(m)) == 0 {
		return false
	}
	const star = 1 << 63
	dom := c.spec.Dom&(1<<uint(d)) != 0
	dow := c.spec.Dow&(1<<uint(time.Date(y, m, d, 12, 0, 0, 0, loc).Weekday())) != 0
	if c.spec.Dom&star != 0 || c.spec.Dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}

// starts calls f with the day's starts (local date y-m-d) in order,
// ascending (asc) or descending, until f returns false; it returns false
// then. Hours that cannot hold a start after bound (ascending) or at or
// before it (descending) are skipped without looking at their minutes.
func (c *cronWindow) starts(y int, m time.Month, d int, loc *time.Location, asc bool, bound time.Time, f func(time.Time) bool) bool {
	if !c.dayMatches(y, m, d, loc) {
		return true
	}
	for i := range 24 {
		h := i
		if !asc {
			h = 23 - i
		}
		if c.spec.Hour&(1<<uint(h)) == 0 {
			continue
		}
		if asc && !time.Date(y, m, d, h, 59, 0, 0, loc).After(bound) {
			continue
		}
		if !asc && time.Date(y, m, d, h, 0, 0, 0, loc).After(bound) {
			continue
		}
		for j := range 60 {
			mi := j
			if !asc {
				mi = 59 - j
			}
			if c.spec.Minute&(1<<uint(mi)) != 0 && !f(time.Date(y, m, d, h, mi, 0, 0, loc)) {
				return false
			}
		}
	}
	return true
}

// prevStart is the latest start at or before t (zero: none in the search
// bound).
func (c *cronWindow) prevStart(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	var found time.Time
	for off := 1; off > -cronSearchDays; off-- {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+off, 12, 0, 0, 0, loc)
		c.starts(day.Year(), day.Month(), day.Day(), loc, false, t, func(s time.Time) bool {
			if s.After(t) {
				return true
			}
			found = s
			return false
		})
		if !found.IsZero() {
			return found
		}
	}
	return time.Time{}
}

// nextStart is the earliest start after t (zero: none in the search
// bound).
func (c *cronWindow) nextStart(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	var found time.Time
	for off := -1; off < cronSearchDays; off++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+off, 12, 0, 0, 0, loc)
		c.starts(day.Year(), day.Month(), day.Day(), loc, true, t, func(s time.Time) bool {
			if !s.After(t) {
				return true
			}
			found = s
			return false
		})
		if !found.IsZero() {
			return found
		}
	}
	return time.Time{}
}

// in reports whether an opening holds t: the latest start at or before t
// is less than the duration before it.
func (c *cronWindow) in(t time.Time, loc *time.Location) bool {
	s := c.prevStart(t, loc)
	return !s.IsZero() && t.Before(s.Add(c.dur))
}

// maxRunSteps bounds how many overlapping openings nextChange follows to
// find where a run of them ends; past it, the bound is returned as a time
// to look again (the state need not change there).
const maxRunSteps = 32

// nextChange is the first time after t at which in changes: while open,
// the end of the run of overlapping openings; while closed, the next
// start (zero: none in the search bound).
func (c *cronWindow) nextChange(t time.Time, loc *time.Location) time.Time {
	s := c.prevStart(t, loc)
	if s.IsZero() || !t.Before(s.Add(c.dur)) {
		return c.nextStart(t, loc)
	}
	// The run goes on while a later start comes no later than the end:
	// jump to the latest such start each time.
	end := s.Add(c.dur)
	for range maxRunSteps {
		n := c.prevStart(end, loc)
		if !n.After(s) {
			return end
		}
		s, end = n, n.Add(c.dur)
	}
	return end
}
