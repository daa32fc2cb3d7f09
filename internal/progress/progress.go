// Package progress is the progress report of a long copy as a command
// shows it: bytes done of bytes total. The copy engine's own events
// (internal/transfer) say more; release and sneakernet turn them into
// this, so their callers (cli) need not know the engine.
package progress

// Event reports the bytes of a whole copy: Done reaches Total on success.
// Both are zero in events that carry no byte counts (a manifest written).
type Event struct {
	Done  int64 // bytes
	Total int64 // bytes
}

// Func receives events, possibly from several goroutines at once.
type Func func(Event)
