package gitmirror

import (
	"strings"
	"testing"
	"time"
)

func TestParseGitPath(t *testing.T) {
	for _, tc := range []struct {
		path    string
		id      string
		svc     service
		wantErr error
	}{
		{"/git/github.com/fleet/apps.git/info/refs", "github.com/fleet/apps", svcInfoRefs, nil},
		{"/git/github.com/fleet/apps/info/refs", "github.com/fleet/apps", svcInfoRefs, nil},
		{"/git/git.example.com:3000/a/b/c.git/git-upload-pack", "git.example.com:3000/a/b/c", svcUploadPack, nil},
		{"/git/github.com/fleet/apps.git/git-receive-pack", "github.com/fleet/apps", svcReceivePack, nil},
		{"/git/github.com/fleet/apps.git", "", 0, errNotGitPath},
		{"/git/github.com/fleet/apps.git/HEAD", "", 0, errNotGitPath},
		{"/git/github.com/fleet/apps.git/objects/info/packs", "", 0, errNotGitPath},
		{"/api/v1/repos", "", 0, errNotGitPath},
		{"/git/info/refs", "", 0, errNotGitPath},
		{"/git//info/refs", "", 0, errBadRepo},
		{"/git/github.com/info/refs", "", 0, errBadRepo},
		{"/git/github.com/../etc/passwd/info/refs", "", 0, errBadRepo},
		{"/git/github.com/./x/info/refs", "", 0, errBadRepo},
		{"/git/github.com//x/info/refs", "", 0, errBadRepo},
		{"/git/github.com/x/../../info/refs", "", 0, errBadRepo},
		{"/git/github.com/x\x00y/info/refs", "", 0, errBadRepo},
		{"/git/github.com/x\\..\\y/info/refs", "", 0, errBadRepo},
		{"/git/github.com/" + strings.Repeat("a", 600) + "/info/refs", "", 0, errBadRepo},
		{"/git/.git/info/refs", "", 0, errBadRepo},
	} {
		id, svc, err := parseGitPath(tc.path)
		if err != tc.wantErr || id != tc.id || svc != tc.svc {
			t.Errorf("parseGitPath(%q) = %q, %v, %v; want %q, %v, %v", tc.path, id, svc, err, tc.id, tc.svc, tc.wantErr)
		}
	}
}

func FuzzParseGitPath(f *testing.F) {
	for _, s := range []string{
		"/git/github.com/fleet/apps.git/info/refs",
		"/git/h:1/a/b.git/git-upload-pack",
		"/git/../x/info/refs",
		"/git/a//b/git-receive-pack",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		id, svc, err := parseGitPath(p)
		if err != nil {
			if id != "" || svc != 0 {
				t.Fatalf("error with results: %q %v", id, svc)
			}
			return
		}
		if svc < svcInfoRefs || svc > svcReceivePack {
			t.Fatalf("bad service %v", svc)
		}
		for _, seg := range strings.Split(id, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q: accepted id %q with segment %q", p, id, seg)
			}
		}
		if strings.ContainsAny(id, "\x00\\") || len(id) > maxRepoPath {
			t.Fatalf("%q: accepted id %q", p, id)
		}
		if !strings.HasPrefix(p, "/git/"+id) {
			t.Fatalf("%q: id %q is not taken from the path", p, id)
		}
	})
}

func TestParseLsRemote(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	out := "ref: refs/heads/main\tHEAD\n" + a + "\tHEAD\n" + a + "\trefs/heads/main\n" + b + "\trefs/tags/v1\n" +
		a + "\trefs/tags/v1^{}\n" + b + "\trefs/pull/1/head\n"
	l, err := parseLsRemote([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if l.head != "refs/heads/main" || len(l.refs) != 2 || l.refs["refs/heads/main"] != a || l.refs["refs/tags/v1"] != b {
		t.Errorf("parsed %+v", l)
	}
	for _, bad := range []string{"no tab here\n", "zzzz\trefs/heads/x\n", a[:39] + "\trefs/heads/x\n"} {
		if _, err := parseLsRemote([]byte(bad)); err == nil {
			t.Errorf("parseLsRemote(%q) accepted", bad)
		}
	}
}

func FuzzParseLsRemote(f *testing.F) {
	f.Add("ref: refs/heads/main\tHEAD\n" + strings.Repeat("a", 40) + "\trefs/heads/main\n")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseLsRemote([]byte(s))
		if err != nil {
			return
		}
		for name, oid := range l.refs {
			if !isMirroredRef(name) || !isHex(oid) {
				t.Fatalf("accepted %q → %q", name, oid)
			}
		}
	})
}

func TestParseForEachRef(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	refs, err := parseForEachRef([]byte(a + "  commit refs/heads/z\n" + b + " " + a + " tag refs/tags/v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].Name != "refs/heads/z" || refs[0].Commit != a || refs[1].Object != b || refs[1].Commit != a {
		t.Errorf("parsed %+v", refs)
	}
	if _, err := parseForEachRef([]byte("garbage\n")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestDedupeKeepLines(t *testing.T) {
	a := strings.Repeat("a", 40)
	got := dedupeKeepLines([]string{"delete " + refKeepPrefix + a, "update " + refKeepPrefix + a + " " + a, "update " + refKeepPrefix + a + " " + a})
	if len(got) != 1 || !strings.HasPrefix(got[0], "update") {
		t.Errorf("dedupe = %v", got)
	}
}

func TestBackoff(t *testing.T) {
	m, err := New(Options{DataDir: t.TempDir(), Upstreams: []Upstream{{URL: "https://example.com/a.git", PollInterval: 30 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	r := m.repos[0]
	// Defaults: from min(poll, 10s) doubling to max(poll, 5m), jittered to [d/2, d].
	var longest time.Duration
	for n := 1; n < 20; n++ {
		d := r.backoff(n)
		if d < 5*time.Second || d > 5*time.Minute {
			t.Fatalf("backoff(%d) = %v, out of [5s, 5m]", n, d)
		}
		longest = max(longest, d)
	}
	if longest < 150*time.Second {
		t.Errorf("backoff never grew past %v", longest)
	}
}

func TestParseAPIPath(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		path, id, sha        string
		bad, notAPI, objects bool
	}{
		{path: "/api/v1/repos"},
		{path: "/api/v1/repos/"},
		{path: "/api/v1/repos/github.com/fleet/apps", id: "github.com/fleet/apps"},
		{path: "/api/v1/repos/github.com/fleet/apps.git", id: "github.com/fleet/apps"},
		{path: "/api/v1/repos/h:3000/a/b/commits/" + sha, id: "h:3000/a/b", sha: sha},
		{path: "/api/v1/repos/h/commits/x/commits/" + strings.ToUpper(sha), id: "h/commits/x", sha: sha},
		{path: "/api/v1/repos/h:3000/a/b/objects/" + sha, id: "h:3000/a/b", sha: sha, objects: true},
		{path: "/api/v1/repos/h/a/objects/" + sha[:7], bad: true},
		{path: "/api/v1/repos/h/a/commits/main", bad: true},
		{path: "/api/v1/repos/h/a/commits/", bad: true},
		{path: "/api/v1/repos/../etc", bad: true},
		{path: "/api/v1/repos/h", bad: true},
		{path: "/api/v1/reposx", notAPI: true},
		{path: "/api/v2/repos", notAPI: true},
	} {
		id, gotSHA, objects, err := parseAPIPath(tc.path)
		switch {
		case tc.notAPI:
			if err != errNotAPIPath {
				t.Errorf("%s: err %v, want not-API", tc.path, err)
			}
		case tc.bad:
			if err == nil || err == errNotAPIPath {
				t.Errorf("%s: err %v, want bad request", tc.path, err)
			}
		case err != nil || id != tc.id || gotSHA != tc.sha || objects != tc.objects:
			t.Errorf("%s: %q %q %v %v, want %q %q %v", tc.path, id, gotSHA, objects, err, tc.id, tc.sha, tc.objects)
		}
	}
}

func FuzzParseAPIPath(f *testing.F) {
	f.Add("/api/v1/repos/github.com/fleet/apps/commits/" + strings.Repeat("a", 40))
	f.Add("/api/v1/repos/../x")
	f.Fuzz(func(t *testing.T, p string) {
		id, sha, _, err := parseAPIPath(p)
		if err != nil {
			return
		}
		if sha != "" && !isHex(sha) {
			t.Fatalf("%q: bad sha %q accepted", p, sha)
		}
		for _, seg := range strings.Split(id, "/") {
			if id != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("%q: id %q accepted", p, id)
			}
		}
	})
}

func TestChooseHead(t *testing.T) {
	a := strings.Repeat("a", 40)
	for _, tc := range []struct {
		l    remoteListing
		want string
	}{
		{remoteListing{head: "refs/heads/dev", refs: map[string]string{"refs/heads/main": a}}, "refs/heads/dev"},
		{remoteListing{refs: map[string]string{"refs/heads/master": a, "refs/heads/x": a}}, "refs/heads/master"},
		{remoteListing{refs: map[string]string{"refs/heads/z": a, "refs/heads/b": a, "refs/tags/v": a}}, "refs/heads/b"},
		{remoteListing{refs: map[string]string{}}, "refs/heads/main"},
	} {
		if got := chooseHead(tc.l); got != tc.want {
			t.Errorf("chooseHead(%+v) = %s, want %s", tc.l, got, tc.want)
		}
	}
}
