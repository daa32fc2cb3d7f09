package edge

import (
	"time"

	"github.com/ballast-dev/ballast/internal/lfs"
)

// SetBodyTimeouts shortens the request body deadlines for a test (the
// state-changing API's, the http listener's, the registry's idle one) and
// returns a function that restores them.
func SetBodyTimeouts(api, other, registryIdle time.Duration) (restore func()) {
	a, o, r := apiBodyTimeout, bodyTimeout, registryBodyIdle
	apiBodyTimeout, bodyTimeout, registryBodyIdle = api, other, registryIdle
	return func() { apiBodyTimeout, bodyTimeout, registryBodyIdle = a, o, r }
}

// LFSStore returns the daemon's LFS store (the site's).
func LFSStore(d *Daemon) *lfs.Mirror { return d.site.LFS }
