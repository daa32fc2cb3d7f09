package syncer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestPassClearsAbandonedStages: a partial blob left in the staging
// directory by an interrupted pass whose revision is no longer wanted (or
// whose blob reached the site another way) is removed once a pass finds
// every wanted revision complete; nothing else ever removes it, so such
// partials piled up on the edge disk for good.
func TestPassClearsAbandonedStages(t *testing.T) {
	s := newSite(t, nil)
	rev := s.commit(map[string]string{"a": "1"})
	pushBundle(t, s.up, s.bundles, rev, map[string]artifact{"docker.io/library/small:1": testimage.Image(t, "linux/amd64", 1, mb)})

	staging := filepath.Join(s.cfg.DataDir, "sync", "staging")
	abandoned := filepath.Join(staging, "sha256-"+strings.Repeat("ab", 32))
	if err := os.MkdirAll(abandoned, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(abandoned, "data"), make([]byte, mb), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := s.pass(); !res.Done() || res.Complete != 1 {
		t.Fatalf("pass: %+v", res)
	}
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Fatalf("abandoned partial blob still staged after a pass that left nothing wanted incomplete (stat: %v)", err)
	}
}
