package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
)

func TestFleetUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfg, []byte("dataDir: "+filepath.Join(dir, "data")+
		"\nlisten: {http: '127.0.0.1:0', registry: '127.0.0.1:0'}\n"+
		"fleet: {site: ship-17, repository: 127.0.0.1:1/fleet/sites, usernameFile: nope-user, passwordFile: nope-pass}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	signCfg := filepath.Join(dir, "edge-signed.yaml")
	if err := os.WriteFile(signCfg, []byte("dataDir: "+filepath.Join(dir, "data")+
		"\nlisten: {http: '127.0.0.1:0', registry: '127.0.0.1:0'}\n"+
		"fleet: {site: ship-17, repository: 127.0.0.1:1/fleet/sites, signKey: nope.key}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notAKey := filepath.Join(dir, "not-a-key.pub")
	if err := os.WriteFile(notAKey, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing --key", []string{"fleet", "--repository", "r.example.com/s", "--key", filepath.Join(dir, "nope.pub")}, "--key:"},
		{"bad --key", []string{"fleet", "--repository", "r.example.com/s", "--key", notAKey}, "--key: public key " + notAKey},
		// The daemon refuses to start with an unreadable signing key, naming it.
		{"edge with a missing fleet.signKey", []string{"edge", "--config", signCfg}, "fleet.signKey: open"},
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

// TestFleetCommand reads a real registry (the embedded one) holding one
// published site: JSON on stdout, text table, and the HTML page written.
func TestFleetCommand(t *testing.T) {
	reg := edgeregistry.Start(t, edgeregistry.Options{})
	creds := reg.Credentials()
	rev := strings.Repeat("c", 40)
	d := fleet.Document{Schema: fleet.SchemaVersion, Site: "ship-17", Version: "test",
		Repos: []fleet.Repo{{ID: "git.example.com/fleet/apps", Ready: []string{rev}, Deployed: rev}}}
	p, err := fleet.NewPublisher(fleet.PublisherOptions{Repository: reg.Host + "/fleet/sites/ship-17",
		Username: creds.Username, Password: creds.Password, Insecure: true, StateFile: filepath.Join(t.TempDir(), "s"),
		Source: func(context.Context) (fleet.Document, error) { return d, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "fleet.html")
	out, errOut, code := runCLI(t, "fleet", "--repository", reg.Host+"/fleet/sites", "--insecure", "-o", "json", "--html", page)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var f struct {
		StaleSeconds int64 `json:"staleSeconds"`
		Sites        []struct {
			Site, State string
			Document    *fleet.Document
		}
	}
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(f.Sites) != 1 || f.Sites[0].State != "current" || f.Sites[0].Document.Repos[0].Deployed != rev || f.StaleSeconds != 6*3600 {
		t.Fatalf("json: %s", out)
	}
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), rev[:12]) {
		t.Fatalf("html page: %v", err)
	}
	out, _, code = runCLI(t, "fleet", "--repository", reg.Host+"/fleet/sites", "--insecure", "--sites", "ship-17,ship-18")
	if code != 0 || !strings.Contains(out, "ship-17  CURRENT") || !strings.Contains(out, "ship-18  ERROR") {
		t.Fatalf("text (exit %d):\n%s", code, out)
	}
}
