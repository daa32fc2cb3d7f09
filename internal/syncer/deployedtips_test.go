package syncer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/syncer"
)

// The tips at an activation are written with it (one atomic write) and
// read back after a restart; a file from before they were kept loads
// with none (the deployed revision then keeps its remote bases' refs).
func TestDeployedTipsAtActivation(t *testing.T) {
	dir := t.TempDir()
	st, err := syncer.OpenDeployed(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	if err := st.RecordActivation("git.example.com/fleet/apps", a, []string{b, c}); err != nil {
		t.Fatal(err)
	}
	st2, err := syncer.OpenDeployed(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st2.TipsAtActivation("git.example.com/fleet/apps"); len(got) != 2 || got[0] != b || got[1] != c || st2.Current("git.example.com/fleet/apps") != a {
		t.Fatalf("after reopening: tips %v, current %s", got, st2.Current("git.example.com/fleet/apps"))
	}
	// A plain Record (no tips known) clears them.
	if err := st2.Record("git.example.com/fleet/apps", b); err != nil {
		t.Fatal(err)
	}
	if got := st2.TipsAtActivation("git.example.com/fleet/apps"); got != nil {
		t.Fatalf("tips after a record without them: %v", got)
	}
	// A file written before tips were kept.
	old := filepath.Join(t.TempDir(), "old")
	if err := os.MkdirAll(filepath.Join(old, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	st3, err := syncer.OpenDeployed(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := st3.Record("r", a); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(findDeployed(t, old))
	if err != nil || strings.Contains(string(raw), "tips") {
		t.Fatalf("a record without tips writes them: %s %v", raw, err)
	}
}

func findDeployed(t *testing.T, dataDir string) string {
	t.Helper()
	var found string
	_ = filepath.Walk(dataDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasPrefix(fi.Name(), "deployed") {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatal("deployed.json not found")
	}
	return found
}
