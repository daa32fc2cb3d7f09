package realtest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMissingFailsWhenRequired runs a child test that calls Missing, with
// and without EnvRequire, and checks that it skips in one case and fails in
// the other: the helper can fail for the reason it exists.
func TestMissingFailsWhenRequired(t *testing.T) {
	if os.Getenv("REALTEST_CHILD") == "1" {
		LookPath(t, "no-such-binary-ballast-realtest", "nothing to install")
		t.Fatal("LookPath returned for a missing binary")
	}
	for _, tc := range []struct {
		require string
		fail    bool
		want    string
	}{
		{"", false, "--- SKIP"},
		{"0", false, "--- SKIP"},
		{"1", true, "--- FAIL"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingFailsWhenRequired$", "-test.v")
		cmd.Env = append(os.Environ(), "REALTEST_CHILD=1", EnvRequire+"="+tc.require)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.fail || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%q: child failed=%v, want %v; output:\n%s", EnvRequire, tc.require, failed, tc.fail, out)
		}
		if !strings.Contains(string(out), "no-such-binary-ballast-realtest") {
			t.Errorf("%s=%q: the message does not name what is missing:\n%s", EnvRequire, tc.require, out)
		}
	}
}

// TestNoSkipAroundRealtest finds every Skip in the tree's tests and test
// helpers: each must be a deliberate mode gate (testing.Short() or an
// opt-in environment variable on the lines just before it). A skip for a
// missing binary, root or kernel facility must go through Missing, or CI
// would not notice that the test did not run.
func TestNoSkipAroundRealtest(t *testing.T) {
	root := "../../.."
	skip := regexp.MustCompile(`\b(t|tb|b|f)\.Skip(f|Now)?\(`)
	var bad []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "vendor" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.Contains(p, "testutil/realtest/") {
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") && !strings.Contains(p, "/testutil/") {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		lines := strings.Split(string(raw), "\n")
		for i, l := range lines {
			if !skip.MatchString(l) {
				continue
			}
			gate := strings.Join(lines[max(0, i-2):i], "\n")
			if strings.Contains(gate, "testing.Short()") || strings.Contains(gate, "os.Getenv(") {
				continue
			}
			bad = append(bad, fmt.Sprintf("%s:%d: %s", strings.TrimPrefix(p, root+"/"), i+1, strings.TrimSpace(l)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("skips that bypass realtest.Missing (CI would not see them):\n%s", strings.Join(bad, "\n"))
	}
}
