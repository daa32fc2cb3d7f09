package edge

import "time"

// SetBodyTimeouts shortens the request body deadlines for a test and
// returns a function that restores them.
func SetBodyTimeouts(api, other time.Duration) (restore func()) {
	a, o := apiBodyTimeout, bodyTimeout
	apiBodyTimeout, bodyTimeout = api, other
	return func() { apiBodyTimeout, bodyTimeout = a, o }
}
