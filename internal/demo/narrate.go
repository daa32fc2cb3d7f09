package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// narrator writes the story: one line per event, with the time since the
// start and who speaks (the cloud, CI, the link, the edge, its sync, the
// gate), so a person can follow the flow as it happens.
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	// fail is called once when the story cannot be written (stdout
	// closed, as in `ballast demo | head`): nobody watches any more, so
	// the demo stops and cleans up.
	fail func()
	err  error
}

func (n *narrator) write(s string) {
	if n.err != nil {
		return
	}
	if _, err := io.WriteString(n.w, s); err != nil {
		n.err = err
		if n.fail != nil {
			n.fail()
		}
	}
}

// failed returns the error that stopped the story's output, if any.
func (n *narrator) failed() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *narrator) say(who, format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	pad := strings.Repeat(" ", 7)
	msg = strings.ReplaceAll(msg, "\n", "\n"+strings.Repeat(" ", 10)+pad+"  ")
	n.write(fmt.Sprintf("%8.1fs  %-7s  %s\n", time.Since(n.start).Seconds(), who, msg))
}

// title writes a section heading.
func (n *narrator) title(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.write(fmt.Sprintf("\n== %s\n", s))
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
