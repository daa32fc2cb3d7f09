package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/verify"
)

// TestBadInputIsAnError: a malformed --registry or --mirror is bad input
// (an error, which the CLI maps to exit 2), never a "not ready" that sends
// the operator looking for a network problem. Nothing is contacted.
func TestBadInputIsAnError(t *testing.T) {
	rev := strings.Repeat("ab", 20)
	for _, tc := range []struct{ mirror, registry, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:5000", "--registry"},
		{"http://127.0.0.1:8080", "127.0.0.1:5000/v2", "--registry"},
		{"http://127.0.0.1:8080", "127.0.0.1", "--registry"},
		{"127.0.0.1:8080", "127.0.0.1:5000", "--mirror"},
		{"ftp://127.0.0.1:8080", "127.0.0.1:5000", "--mirror"},
		{"http://127.0.0.1:8080?x", "127.0.0.1:5000", "--mirror"},
	} {
		_, err := verify.Run(context.Background(), verify.Options{RepoURL: "https://h/a/b.git", Revision: rev, MirrorURL: tc.mirror, Registry: tc.registry})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mirror %q registry %q: %v, want an error naming %s", tc.mirror, tc.registry, err, tc.want)
		}
	}
}
