package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Misses are remembered per repository for waitingFor, bounded over all
// repositories, and a repeated miss kicks sync at most every missRekick.
func TestBundleMisses(t *testing.T) {
	var m bundleMisses
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	sha := func(i int) string { return fmt.Sprintf("%040x", i) }
	if !m.note("h/a", sha(1), now) {
		t.Fatal("a new miss does not kick")
	}
	if m.note("h/a", sha(1), now.Add(time.Second)) {
		t.Error("a repeated miss kicks at once")
	}
	if !m.note("h/a", sha(1), now.Add(missRekick+time.Second)) {
		t.Error("a miss repeated after missRekick does not kick")
	}
	if got := m.recent("h/a", now.Add(waitingFor)); len(got) != 1 || got[0] != sha(1) {
		t.Errorf("recent within waitingFor of the last miss: %v", got)
	}
	if got := m.recent("h/a", now.Add(missRekick+time.Second+waitingFor)); len(got) != 0 {
		t.Errorf("recent after waitingFor: %v", got)
	}
	if got := m.recent("h/b", now); len(got) != 0 {
		t.Errorf("another repository: %v", got)
	}
	for i := range 2 * maxBundleMisses {
		m.note("h/b", sha(100+i), now)
	}
	got := m.recent("h/b", now)
	if len(got) != maxBundleMisses || got[0] != sha(100+2*maxBundleMisses-1) || !strings.HasSuffix(got[len(got)-1], fmt.Sprintf("%x", 100+maxBundleMisses)) {
		t.Errorf("bounded to the newest %d: %d kept, newest %s", maxBundleMisses, len(got), got[0])
	}
}
