package imageref

import (
	"strings"
	"testing"
)

const dig = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want, edge string }{
		{"nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx"},
		{"nginx:1.27.1", "docker.io/library/nginx:1.27.1", "docker.io/library/nginx"},
		{"docker.io/library/nginx:1.27.1", "docker.io/library/nginx:1.27.1", "docker.io/library/nginx"},
		{"index.docker.io/bitnami/redis:7", "docker.io/bitnami/redis:7", "docker.io/bitnami/redis"},
		{"ghcr.io/org/app@" + dig, "ghcr.io/org/app@" + dig, "ghcr.io/org/app"},
		{"ghcr.io/org/app:v1@" + dig, "ghcr.io/org/app:v1@" + dig, "ghcr.io/org/app"},
		{"127.0.0.1:5000/team/app:2", "127.0.0.1:5000/team/app:2", "127.0.0.1_5000/team/app"},
		{"localhost:5000/app", "localhost:5000/app:latest", "localhost_5000/app"},
		{"quay.io/a/b/c:x", "quay.io/a/b/c:x", "quay.io/a/b/c"},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.want || r.EdgeRepository() != tc.edge {
			t.Errorf("Parse(%q) = %q (edge %q), want %q (edge %q)", tc.in, r, r.EdgeRepository(), tc.want, tc.edge)
		}
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 248)
	for _, in := range []string{"", " nginx", "NGINX", "nginx:", "nginx@sha256:bad", "a//b", "nginx:tag:tag", "ghcr.io/x@",
		// Names over 255 characters once normalized (the fuzz input that
		// found it: 248 characters that "docker.io/library/" pushes over).
		long, long + ":v1",
		// Registries that are no host name (the edge lowercases them
		// into its repository names).
		"0\xd4\xd4./x", "h\u00e9.example/x", "a_b.example/x", "-h.example/x", "h.example:/x", "docker.io/" + long, "ghcr.io/" + long, "127.0.0.1:5000/" + long + "@" + dig} {
		if r, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %q, want error", in, r)
		}
	}
}

func TestBundleRepository(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/Fleet/Apps.git", "ballast/bundles/github.com/fleet/apps"},
		{"http://127.0.0.1:3000/fleet/apps", "ballast/bundles/127.0.0.1_3000/fleet/apps"},
		{"https://user:pw@git.example.com/a/b/c.git/", "ballast/bundles/git.example.com/a/b/c"},
		// Another edge's mirror as the upstream: host:port inside the path.
		{"http://port.example:8080/git/git.example.com:3000/fleet/apps.git", "ballast/bundles/port.example_8080/git/git.example.com_3000/fleet/apps"},
		{"http://127.0.0.1:8080/git/127.0.0.1:3000/Fleet/Apps.git", "ballast/bundles/127.0.0.1_8080/git/127.0.0.1_3000/fleet/apps"},
	} {
		got, err := BundleRepository(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("BundleRepository(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "https://", "https://host/", "https://host/a/../b", "::", "https://git.example.com/" + strings.Repeat("a", 240)} {
		if got, err := BundleRepository(in); err == nil {
			t.Errorf("BundleRepository(%q) = %q, want error", in, got)
		}
	}
	// Paths git accepts but an OCI repository name cannot hold: refused,
	// naming the component (never a name the registry would refuse later).
	for in, comp := range map[string]string{
		"https://git.example.com/~user/apps.git": `"~user"`,
		"https://git.example.com/a..b/apps":      `"a..b"`,
		"https://git.example.com/-x/apps":        `"-x"`,
		"https://git.example.com/a b/apps":       `"a b"`,
		"http://[::1]:3000/fleet/apps":           `"[__1]_3000"`,
	} {
		got, err := BundleRepository(in)
		if err == nil || !strings.Contains(err.Error(), comp) {
			t.Errorf("BundleRepository(%q) = %q, %v; want an error naming %s", in, got, err, comp)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"nginx", "ghcr.io/org/app:v1@" + dig, "127.0.0.1:5000/x", "a@b", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		// A normalized reference parses again to itself.
		r2, err := Parse(r.String())
		if err != nil || r2 != r {
			t.Fatalf("Parse(%q) = %q, reparse = %q, %v", s, r, r2, err)
		}
		if n := len(r.EdgeRepository()); n > MaxNameLength {
			t.Fatalf("edge repository of %q is %d characters", s, n)
		}
		if strings.Contains(r.EdgeRepository(), ":") {
			t.Fatalf("edge repository %q has a colon", r.EdgeRepository())
		}
	})
}
