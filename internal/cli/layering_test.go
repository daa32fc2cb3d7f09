package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLIIsFlagsToOptions guards the layering rule of issue 12 item 4: the
// CLI turns flags into options and calls one capability (site, sneakernet,
// release, verify, ...); it never assembles the edge's parts itself, so it
// imports no mirror, registry or syncer.
func TestCLIIsFlagsToOptions(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go tool is not on PATH: cannot list imports")
	}
	out, err := exec.Command(goBin, "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		for _, banned := range []string{"internal/gitmirror", "internal/registry", "internal/syncer"} {
			if imp == "github.com/ballast-dev/ballast/"+banned {
				t.Errorf("internal/cli imports %s: open the site (internal/site) instead", imp)
			}
		}
	}
}
