package gitmirror

import (
	"context"
	"time"
)

// RefsChanged says that a repository's branches, tags or HEAD changed (or
// that it was cloned). It carries the full current state, so a subscriber
// that sees only the latest event for a repository misses nothing.
type RefsChanged struct {
	Repo string    // repository id, "<host>/<path>"
	URL  string    // upstream URL as configured
	Head string    // HEAD's symref target
	Refs []Ref     // every branch and tag, sorted by name
	At   time.Time // when the change was seen
}

// subscriber holds the events not yet delivered, one per repository: a
// newer event for a repository replaces the older one. So a slow subscriber
// never stalls a fetch and the queue is bounded by the number of repositories.
type subscriber struct {
	wake    chan struct{}
	pending map[string]RefsChanged
	order   []string
}

// Subscribe returns a channel of RefsChanged events, closed when ctx is
// done. Events for the same repository are coalesced while the subscriber
// is busy. A subscriber should read RefTips for every repository once at
// start: events only report changes seen after Subscribe.
func (m *Mirror) Subscribe(ctx context.Context) <-chan RefsChanged {
	s := &subscriber{wake: make(chan struct{}, 1), pending: map[string]RefsChanged{}}
	m.subMu.Lock()
	m.subs[s] = struct{}{}
	m.subMu.Unlock()
	out := make(chan RefsChanged)
	go func() {
		defer close(out)
		defer func() {
			m.subMu.Lock()
			delete(m.subs, s)
			m.subMu.Unlock()
		}()
		for {
			m.subMu.Lock()
			var ev RefsChanged
			have := len(s.order) > 0
			if have {
				id := s.order[0]
				s.order = s.order[1:]
				ev = s.pending[id]
				delete(s.pending, id)
			}
			m.subMu.Unlock()
			if !have {
				select {
				case <-ctx.Done():
					return
				case <-s.wake:
					continue
				}
			}
			select {
			case <-ctx.Done():
				return
			case out <- ev:
			}
		}
	}()
	return out
}

// publish queues ev for every subscriber.
func (m *Mirror) publish(ev RefsChanged) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for s := range m.subs {
		if _, queued := s.pending[ev.Repo]; !queued {
			s.order = append(s.order, ev.Repo)
		}
		s.pending[ev.Repo] = ev
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}
