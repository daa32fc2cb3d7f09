package gitmirror

import (
	"context"
	"testing"
	"time"
)

func TestSubscribeCoalescesPerRepo(t *testing.T) {
	m, err := New(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := m.Subscribe(ctx)
	for i, repo := range []string{"a/x", "b/y", "a/x", "a/x"} {
		m.publish(RefsChanged{Repo: repo, Head: string(rune('0' + i))})
	}
	last := map[string]string{}
	n := 0
	for {
		select {
		case ev := <-ch:
			last[ev.Repo] = ev.Head
			n++
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	// The delivery goroutine may have taken the first a/x before the later
	// ones arrived; what matters is that the latest state is delivered and
	// nothing queues up per event.
	if last["a/x"] != "3" || last["b/y"] != "1" || n > 3 {
		t.Errorf("%d events, last per repo %v: want a/x=3, b/y=1, at most 3 events", n, last)
	}
	cancel()
	if _, open := <-ch; open {
		t.Error("channel not closed after cancel")
	}
}
