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

// TestRepoURLWithoutBundleName: a --repo whose URL maps to no valid edge
// repository name is bad input naming the component; a relay upstream (an
// edge mirror URL with host:port in its path) is a valid one.
func TestRepoURLWithoutBundleName(t *testing.T) {
	rev := strings.Repeat("ab", 20)
	_, err := verify.Run(context.Background(), verify.Options{RepoURL: "https://h/~user/b.git", Revision: rev, MirrorURL: "http://127.0.0.1:1", Registry: "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), `--repo: git URL "https://h/~user/b.git": path component "~user"`) {
		t.Errorf("--repo with ~user: %v, want an error naming the component", err)
	}
	r, err := verify.Run(context.Background(), verify.Options{RepoURL: "http://127.0.0.1:1/git/git.example.com:3000/a/b.git", Revision: rev, MirrorURL: "http://127.0.0.1:1", Registry: "127.0.0.1:1"})
	if err != nil || r.Ready {
		t.Errorf("relay --repo: %+v, %v; want a not-ready result (nothing listens), not an option error", r, err)
	}
}

// TestRepoURLWithCredentials: --repo follows the edge config's URL rules; a
// credential in it is bad input, and the error never quotes it.
func TestRepoURLWithCredentials(t *testing.T) {
	rev := strings.Repeat("ab", 20)
	for _, u := range []string{"https://u:s3cret@h/a/b.git", "https://tok3n@h/a/b.git", "ssh://git:s3cret@h/a/b.git", "https://h/a/%0ab.git"} {
		_, err := verify.Run(context.Background(), verify.Options{RepoURL: u, Revision: rev, MirrorURL: "http://127.0.0.1:1", Registry: "127.0.0.1:1"})
		if err == nil || !strings.HasPrefix(err.Error(), "--repo: ") || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "tok3n") {
			t.Errorf("--repo %q: %v, want an option error that does not quote the credential", u, err)
		}
	}
}
