package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFleetSection(t *testing.T) {
	base := "dataDir: /d\nrepositories: [{url: https://github.com/fleet/apps.git}]\n"
	c, err := Parse([]byte(base + "fleet: {site: ship-17, repository: registry.example.com/fleet/sites, usernameFile: u, passwordFile: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Fleet
	if f.Interval.Duration != DefaultFleetInterval || f.Heartbeat.Duration != DefaultFleetHeartbeat ||
		f.SiteRepository() != "registry.example.com/fleet/sites/ship-17" {
		t.Fatalf("fleet %+v", f)
	}
	c.resolvePaths("/etc/ballast")
	if c.Fleet.UsernameFile != filepath.Join("/etc/ballast", "u") {
		t.Errorf("usernameFile not resolved: %q", c.Fleet.UsernameFile)
	}
	if c, _ := Parse([]byte(base)); c.Fleet != nil {
		t.Error("no fleet section, but Fleet is set")
	}
	for _, tc := range []struct{ fleet, want string }{
		{"{repository: r.example.com/sites}", "fleet.site: required"},
		{"{site: Ship_17, repository: r.example.com/sites}", `fleet.site: "Ship_17" is not a site name`},
		{"{site: a/b, repository: r.example.com/sites}", "fleet.site:"},
		{"{site: s}", "fleet.repository: required"},
		{"{site: s, repository: r.example.com/sites:latest}", "fleet.repository:"},
		{"{site: s, repository: r.example.com/Sites}", "fleet.repository:"},
		{"{site: s, repository: r.example.com/sites, usernameFile: u}", "fleet: usernameFile and passwordFile go together"},
		{"{site: s, repository: r.example.com/sites, interval: 10ms}", "fleet.interval: 10ms is below 1s"},
		{"{site: s, repository: r.example.com/sites, interval: 1h, heartbeat: 30m}", "fleet.heartbeat: 30m0s is below fleet.interval"},
		{"{site: s, repository: r.example.com/sites, every: 1h}", `unknown field "every"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(base + "fleet: " + tc.fleet + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want %q", err, tc.want)
			}
		})
	}
}
