package transfer

import "github.com/ballast-dev/ballast/internal/progress"

// CommandOptions turns the plain options a command takes into the engine's:
// the concurrency when set (0 keeps the engine's default, 4), and progress
// reported as bytes done of total (retries are the engine's to log). It is
// the one place release and sneakernet translate their options.
func CommandOptions(concurrency int, report progress.Func) []Option {
	var opts []Option
	if concurrency != 0 {
		opts = append(opts, WithConcurrency(concurrency))
	}
	if report != nil {
		opts = append(opts, WithProgress(func(ev Event) {
			if ev.Kind != Retrying {
				report(progress.Event{Done: ev.Done, Total: ev.Total})
			}
		}))
	}
	return opts
}
