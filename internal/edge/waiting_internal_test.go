package edge

import (
	"strings"
	"testing"
	"time"
)

// The revision the latest verify found NOT READY, recently, is the one the
// gate waits on; a later READY, another revision, or an old report is not.
func TestWaitingOn(t *testing.T) {
	rev, other := strings.Repeat("a", 40), strings.Repeat("b", 40)
	url := "https://git.example.com/Fleet/Apps.git"
	id := "git.example.com/fleet/apps"
	d := &Daemon{}
	d.verifs.add(Verification{Repo: url, Revision: rev, Allowed: false, At: time.Now()})
	if !d.waitingOn(id, rev) || d.waitingOn(id, other) || d.waitingOn("git.example.com/fleet/infra", rev) {
		t.Fatal("NOT READY not seen as waiting")
	}
	d.verifs.add(Verification{Repo: url, Revision: rev, Allowed: true, At: time.Now()})
	if d.waitingOn(id, rev) {
		t.Fatal("still waiting after READY")
	}
	d.verifs.add(Verification{Repo: url, Revision: other, Allowed: false, At: time.Now().Add(-waitingFor - time.Minute)})
	if d.waitingOn(id, other) {
		t.Fatal("an old NOT READY still counts")
	}
}
