package gitdeps

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

func TestIDForms(t *testing.T) {
	want := "github.com/fleet/lib"
	for _, u := range []string{
		"https://github.com/fleet/lib.git",
		"https://github.com/fleet/lib",
		"http://github.com/fleet/lib/",
		"ssh://git@github.com/fleet/lib.git",
		"ssh://github.com/fleet/lib",
		"git@github.com:fleet/lib.git",
		"git@github.com:fleet/lib",
		"git@github.com:/fleet/lib",
	} {
		got, err := ID(u)
		if err != nil || got != want {
			t.Errorf("ID(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
	if got, _ := ID("http://127.0.0.1:3000/fleet/lib.git"); got != "127.0.0.1:3000/fleet/lib" {
		t.Errorf("port: %q", got)
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for _, u := range []string{
		"", "-uevil", "--upload-pack=touch /tmp/pwned", "/srv/git/lib.git", "./lib", "file:///srv/lib.git",
		"git://github.com/fleet/lib", "ext::sh -c touch% /tmp/pwned", "fd::3", "https://user:pw@github.com/x/y",
		"https://github.com/", "https://github.com/x?y=1", "git@:x", "git@host", "ssh://-oProxyCommand=x/y",
		"https://github.com/a b", "https://github.com/x/../y", "host\\x:y", "git@-x:y/z",
	} {
		if n, err := Normalize(u); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", u, n)
		} else if !errors.Is(err, ErrBadURL) {
			t.Errorf("Normalize(%q): %v is not ErrBadURL", u, err)
		}
	}
}

func TestResolveSubmoduleURL(t *testing.T) {
	super := "https://git.example.com/fleet/apps.git"
	for _, c := range []struct{ sub, want string }{
		{"../lib.git", "https://git.example.com/fleet/lib.git"},
		{"../lib", "https://git.example.com/fleet/lib"},
		{"../../other/lib.git", "https://git.example.com/other/lib.git"},
		{"./../lib", "https://git.example.com/fleet/lib"},
		{"https://elsewhere.example/x/y.git", "https://elsewhere.example/x/y.git"},
		{"git@github.com:x/y.git", "ssh://git@github.com/x/y.git"},
	} {
		got, err := ResolveSubmoduleURL(super, c.sub)
		if err != nil || got != c.want {
			t.Errorf("ResolveSubmoduleURL(%q) = %q, %v; want %q", c.sub, got, err, c.want)
		}
	}
	got, err := ResolveSubmoduleURL("git@github.com:fleet/apps.git", "../lib.git")
	if err != nil || got != "ssh://git@github.com/fleet/lib.git" {
		t.Errorf("scp-like super: %q, %v", got, err)
	}
	for _, sub := range []string{"../../../etc/passwd", "../../..", "..", "../", "../-x/../../.."} {
		if got, err := ResolveSubmoduleURL(super, sub); err == nil {
			t.Errorf("ResolveSubmoduleURL(%q) = %q, want an error", sub, got)
		}
	}
}

// TestResolveMatchesGit checks relative resolution against git itself
// (`git submodule init` writes the resolved URL into .git/config).
func TestResolveMatchesGit(t *testing.T) {
	gitserver.RequireGit(t)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	super := "https://git.example.com:8443/fleet/apps.git"
	run("init", "-q")
	run("remote", "add", "origin", super)
	subs := map[string]string{"a": "../lib.git", "b": "../../other/x", "c": "./inner", "d": "./../y/z.git"}
	var gm strings.Builder
	for name, u := range subs {
		gm.WriteString("[submodule \"" + name + "\"]\n\tpath = " + name + "\n\turl = " + u + "\n")
		run("update-index", "--add", "--cacheinfo", "160000,1111111111111111111111111111111111111111,"+name)
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitmodules"), []byte(gm.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run("add", ".gitmodules")
	run("submodule", "init")
	for name, u := range subs {
		want := run("config", "submodule."+name+".url")
		got, err := ResolveSubmoduleURL(super, u)
		if err != nil || got != want {
			t.Errorf("%s: ResolveSubmoduleURL = %q, %v; git says %q", u, got, err, want)
		}
	}
}

func TestParseConfigList(t *testing.T) {
	z := "core.x\ny\x00submodule.lib.path\nvendor/lib\x00submodule.lib.url\n../lib.git\x00" +
		"submodule.b.path\na/b\x00submodule.b.url\nhttps://h/x/b\x00submodule.nourl.path\nz\x00"
	got, err := ParseConfigList([]byte(z))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "a/b" || got[1].URL != "../lib.git" || got[1].Name != "lib" {
		t.Fatalf("got %+v", got)
	}
}

func TestParseConfigListRefuses(t *testing.T) {
	for name, z := range map[string]string{
		"path escape":     "submodule.a.path\n../../x\x00submodule.a.url\nhttps://h/x/y\x00",
		"name escape":     "submodule.../../modules/x.path\nx\x00submodule.../../modules/x.url\nhttps://h/x/y\x00",
		"option url":      "submodule.a.path\na\x00submodule.a.url\n-uevil\x00",
		"upload-pack":     "submodule.a.path\na\x00submodule.a.url\n--upload-pack=touch /tmp/x\x00",
		"option path":     "submodule.a.path\n--recurse\x00submodule.a.url\nhttps://h/x/y\x00",
		"absolute path":   "submodule.a.path\n/etc\x00submodule.a.url\nhttps://h/x/y\x00",
		".git path":       "submodule.a.path\nx/.git\x00submodule.a.url\nhttps://h/x/y\x00",
		"file url":        "submodule.a.path\na\x00submodule.a.url\nfile:///etc\x00",
		"ext url":         "submodule.a.path\na\x00submodule.a.url\next::sh -c id\x00",
		"duplicate path":  "submodule.a.path\na\x00submodule.a.url\nhttps://h/x/y\x00submodule.b.path\na\x00submodule.b.url\nhttps://h/x/z\x00",
		"not terminated":  "submodule.a.path\na",
		"relative w/ ctl": "submodule.a.path\na\x00submodule.a.url\n../x\ty\x00",
	} {
		if got, err := ParseConfigList([]byte(z)); err == nil {
			t.Errorf("%s: got %+v, want an error", name, got)
		}
	}
}

func TestParseRemoteBase(t *testing.T) {
	for _, c := range []struct {
		in   string
		want RemoteBase
	}{
		{"https://git.example.com/org/base.git//deploy?ref=v1.2", RemoteBase{RepoURL: "https://git.example.com/org/base.git", Path: "deploy", Ref: "v1.2"}},
		{"https://git.example.com/org/base//deploy/prod?ref=0123456789abcdef0123456789abcdef01234567", RemoteBase{RepoURL: "https://git.example.com/org/base", Path: "deploy/prod", Ref: "0123456789abcdef0123456789abcdef01234567"}},
		{"http://127.0.0.1:3000/org/base.git/deploy?version=main", RemoteBase{RepoURL: "http://127.0.0.1:3000/org/base.git", Path: "deploy", Ref: "main"}},
		{"github.com/org/repo/deploy?ref=v1", RemoteBase{RepoURL: "https://github.com/org/repo", Path: "deploy", Ref: "v1"}},
		{"git@github.com:org/repo.git//deploy?ref=v1", RemoteBase{RepoURL: "ssh://git@github.com/org/repo.git", Path: "deploy", Ref: "v1"}},
		{"git::https://git.example.com/org/base.git", RemoteBase{RepoURL: "https://git.example.com/org/base.git"}},
		{"ssh://git@git.example.com/org/base.git//x", RemoteBase{RepoURL: "ssh://git@git.example.com/org/base.git", Path: "x"}},
	} {
		got, remote, err := ParseRemoteBase(c.in)
		if err != nil || !remote || got != c.want {
			t.Errorf("ParseRemoteBase(%q) = %+v, %v, %v; want %+v", c.in, got, remote, err, c.want)
		}
	}
	for _, local := range []string{"../base", "deploy.yaml", "overlays/prod"} {
		if _, remote, err := ParseRemoteBase(local); remote || err != nil {
			t.Errorf("%q: remote %v, %v", local, remote, err)
		}
	}
	for _, bad := range []string{
		"https://git.example.com/org/base.git//../../etc?ref=v1",
		"https://git.example.com/org/base.git//x?ref=--upload-pack=x",
		"https://git.example.com/org/base/deploy",
		"file:///srv/base.git//x",
		"git::ext::sh",
	} {
		if got, _, err := ParseRemoteBase(bad); err == nil {
			t.Errorf("ParseRemoteBase(%q) = %+v, want an error", bad, got)
		}
	}
}

// TestRulesMatchGit: every URL form is rewritten to the mirror, by Rewrite
// and by git itself (`git ls-remote --get-url` applies insteadOf).
func TestRulesMatchGit(t *testing.T) {
	gitserver.RequireGit(t)
	rules, err := Rules("http://edge:8080/", Hosts("https://github.com/fleet/apps.git", "http://127.0.0.1:3000/x/y", "bogus"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(cfg, []byte(GitConfig(rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"https://github.com/fleet/lib.git", "http://edge:8080/git/github.com/fleet/lib.git"},
		{"https://github.com/fleet/lib", "http://edge:8080/git/github.com/fleet/lib"},
		{"http://github.com/fleet/lib", "http://edge:8080/git/github.com/fleet/lib"},
		{"git@github.com:fleet/lib.git", "http://edge:8080/git/github.com/fleet/lib.git"},
		{"ssh://git@github.com/fleet/lib", "http://edge:8080/git/github.com/fleet/lib"},
		{"ssh://github.com/fleet/lib", "http://edge:8080/git/github.com/fleet/lib"},
		{"git://github.com/fleet/lib", "http://edge:8080/git/github.com/fleet/lib"},
		{"http://127.0.0.1:3000/x/z.git", "http://edge:8080/git/127.0.0.1:3000/x/z.git"},
		{"https://gitlab.com/x/y", "http://edge:8080/git/gitlab.com/x/y"},
		{"ssh://git@gitlab.com:2222/x/y.git", "http://edge:8080/git/gitlab.com:2222/x/y.git"},
		{"http://edge:8080/git/github.com/fleet/apps.git", "http://edge:8080/git/github.com/fleet/apps.git"},
	} {
		got, _ := Rewrite(rules, c.in)
		if got != c.want {
			t.Errorf("Rewrite(%q) = %q, want %q", c.in, got, c.want)
		}
		if id, err := ID(c.in); err == nil && !strings.HasPrefix(c.in, "http://edge:8080/") && !strings.HasSuffix(got, "/git/"+id) && !strings.HasSuffix(got, "/git/"+id+".git") {
			t.Errorf("%q is rewritten to %q, not to the mirror URL of its id %q", c.in, got, id)
		}
		cmd := exec.Command("git", "ls-remote", "--get-url", c.in)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+cfg, "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git ls-remote --get-url %s: %v", c.in, err)
		}
		if g := strings.TrimSpace(string(out)); g != c.want {
			t.Errorf("git rewrites %q to %q, want %q", c.in, g, c.want)
		}
		// The same rules through the environment.
		cmd = exec.Command("git", "ls-remote", "--get-url", c.in)
		cmd.Env = append(append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"), Env(rules)...)
		if out, err = cmd.Output(); err != nil || strings.TrimSpace(string(out)) != c.want {
			t.Errorf("env: git rewrites %q to %q (%v), want %q", c.in, out, err, c.want)
		}
	}
	if _, err := Rules("ftp://x", nil); err == nil {
		t.Error("ftp mirror base accepted")
	}
}

func FuzzParseConfigList(f *testing.F) {
	f.Add([]byte("submodule.lib.path\nvendor/lib\x00submodule.lib.url\n../lib.git\x00"))
	f.Add([]byte("submodule.a.path\n../x\x00submodule.a.url\n-u\x00"))
	f.Fuzz(func(t *testing.T, z []byte) {
		subs, err := ParseConfigList(z)
		if err != nil {
			return
		}
		for _, s := range subs {
			if s.Validate() != nil || strings.Contains("/"+s.Path+"/", "/../") || strings.HasPrefix(s.URL, "-") {
				t.Fatalf("accepted %+v", s)
			}
		}
	})
}

func FuzzResolveSubmoduleURL(f *testing.F) {
	f.Add("https://h/org/apps.git", "../lib.git")
	f.Add("git@h:org/apps", "../../../x")
	f.Add("https://h/a", "--upload-pack=x")
	f.Fuzz(func(t *testing.T, super, sub string) {
		u, err := ResolveSubmoduleURL(super, sub)
		if err != nil {
			return
		}
		if _, err := ID(u); err != nil || strings.HasPrefix(u, "-") {
			t.Fatalf("%q + %q resolved to %q, which ID refuses: %v", super, sub, u, err)
		}
	})
}

func FuzzParseRemoteBase(f *testing.F) {
	f.Add("https://git.example.com/org/base.git//deploy?ref=v1.2")
	f.Add("github.com/org/repo/deploy?ref=v1")
	f.Add("git@github.com:org/repo.git//x?ref=-x")
	f.Fuzz(func(t *testing.T, s string) {
		rb, remote, err := ParseRemoteBase(s)
		if err != nil || !remote {
			return
		}
		if _, err := ID(rb.RepoURL); err != nil || strings.HasPrefix(rb.Ref, "-") || strings.Contains("/"+rb.Path+"/", "/../") {
			t.Fatalf("%q parsed to %+v (%v)", s, rb, err)
		}
	})
}
