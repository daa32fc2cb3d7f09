package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFleetUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfg, []byte("dataDir: "+filepath.Join(dir, "data")+
		"\nlisten: {http: '127.0.0.1:0', registry: '127.0.0.1:0'}\n"+
		"fleet: {site: ship-17, repository: 127.0.0.1:1/fleet/sites, usernameFile: nope-user, passwordFile: nope-pass}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --repository", []string{"fleet"}, "--repository is required"},
		{"bad output", []string{"fleet", "--repository", "r.example.com/s", "-o", "yaml"}, "output format"},
		{"bad site", []string{"fleet", "--repository", "r.example.com/s", "--sites", "a/b"}, "--sites"},
		{"bad stale", []string{"fleet", "--repository", "r.example.com/s", "--stale", "0s"}, "--stale"},
		// The daemon refuses to start without its fleet credential, naming it.
		{"edge without the fleet credential", []string{"edge", "--config", cfg}, "fleet.usernameFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
	}
}

// TestFleetUnreachableHubExitsOne: listing sites that cannot be listed is
// a failed operation, not bad usage.
func TestFleetUnreachableHubExitsOne(t *testing.T) {
	_, errOut, code := runCLI(t, "fleet", "--repository", "127.0.0.1:1/fleet/sites", "--insecure")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q; want 1 naming the registry", code, errOut)
	}
}
