package gitmirror_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
)

// TestRefRenamesFollowed covers the class "the upstream renamed refs into
// shapes that conflict with the mirror's old ones": a fetch straight into
// refs/heads/ fails on every poll for a file/directory conflict, and with
// --atomic every other branch (main) freezes with it. Each case changes the
// upstream, moves main too, and expects the very next poll to succeed, the
// mirror to advertise exactly what the upstream has, and every tip the
// upstream dropped to be kept.
func TestRefRenamesFollowed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(r *gitserver.Repo)
		change func(r *gitserver.Repo)
	}{
		{"branch file to directory", func(r *gitserver.Repo) {
			r.Commit("release", map[string]string{"r.txt": "1\n"})
		}, func(r *gitserver.Repo) {
			r.DeleteBranch("release")
			r.Commit("release/2024", map[string]string{"r.txt": "2024\n"})
		}},
		{"branch directory to file", func(r *gitserver.Repo) {
			r.Commit("release/2024", map[string]string{"r.txt": "2024\n"})
			r.Commit("release/2025", map[string]string{"r.txt": "2025\n"})
		}, func(r *gitserver.Repo) {
			r.DeleteBranch("release/2024")
			r.DeleteBranch("release/2025")
			r.Commit("release", map[string]string{"r.txt": "flat\n"})
		}},
		{"deep directory to file", func(r *gitserver.Repo) {
			r.Commit("a/b/c", map[string]string{"x.txt": "1\n"})
		}, func(r *gitserver.Repo) {
			r.DeleteBranch("a/b/c")
			r.Commit("a", map[string]string{"x.txt": "2\n"})
		}},
		{"case-only rename", func(r *gitserver.Repo) {
			r.Commit("Release", map[string]string{"c.txt": "1\n"})
		}, func(r *gitserver.Repo) {
			sha := r.Rev("Release")
			r.DeleteBranch("Release")
			r.ForcePush("release", sha)
		}},
		{"case-only rename with a directory", func(r *gitserver.Repo) {
			r.Commit("Team/app", map[string]string{"c.txt": "1\n"})
		}, func(r *gitserver.Repo) {
			r.DeleteBranch("Team/app")
			r.Commit("team", map[string]string{"c.txt": "2\n"})
			r.Commit("Team", map[string]string{"c.txt": "3\n"})
		}},
		{"tag and branch of the same name", func(r *gitserver.Repo) {
			r.Commit("v2", map[string]string{"v.txt": "branch\n"})
		}, func(r *gitserver.Repo) {
			r.Tag("v2", r.Rev("main~1"))
			r.Commit("v2", map[string]string{"v.txt": "branch moved\n"})
		}},
		{"tag file to directory", func(r *gitserver.Repo) {
			r.Tag("v3", r.Rev("main"))
		}, func(r *gitserver.Repo) {
			r.Git("update-ref", "-d", "refs/tags/v3")
			r.Tag("v3/rc1", r.Rev("main~1"))
			r.Git("tag", "-a", "-m", "annotated", "v3/final", r.Rev("main~2"))
		}},
		{"tag directory to file", func(r *gitserver.Repo) {
			r.Tag("v4/rc1", r.Rev("main"))
		}, func(r *gitserver.Repo) {
			r.Git("update-ref", "-d", "refs/tags/v4/rc1")
			r.Tag("v4", r.Rev("main~1"))
		}},
		{"deleted and recreated elsewhere", func(r *gitserver.Repo) {
			r.Commit("hotfix", map[string]string{"h.txt": "1\n"})
		}, func(r *gitserver.Repo) {
			r.DeleteBranch("hotfix")
			r.Commit("hotfix", map[string]string{"h.txt": "new root\n"}) // a new root commit
		}},
		{"many at once", func(r *gitserver.Repo) {
			r.Commit("x", map[string]string{"m.txt": "x\n"})
			r.Commit("y/1", map[string]string{"m.txt": "y1\n"})
			r.Commit("z/a/b", map[string]string{"m.txt": "zab\n"})
			r.Tag("t", r.Rev("main"))
		}, func(r *gitserver.Repo) {
			r.DeleteBranch("x")
			r.Commit("x/1", map[string]string{"m.txt": "x1\n"})
			r.Commit("x/2", map[string]string{"m.txt": "x2\n"})
			r.DeleteBranch("y/1")
			r.Commit("y", map[string]string{"m.txt": "y\n"})
			r.DeleteBranch("z/a/b")
			r.Commit("z/a", map[string]string{"m.txt": "za\n"})
			r.Git("update-ref", "-d", "refs/tags/t")
			r.Tag("t/1", r.Rev("main"))
			r.Commit("brand-new", map[string]string{"m.txt": "new\n"})
		}},
	} {
		for _, gated := range []bool{false, true} {
			name := tc.name
			if gated {
				name += " (gated repository)"
			}
			t.Run(name, func(t *testing.T) {
				up := gitserver.New(t)
				r := up.CreateRepo(t, "fleet/apps")
				r.CommitN("main", 3)
				tc.setup(r)
				u := up.URL("fleet/apps")
				h := startMirror(t, "", []string{u}, func(o *gitmirror.Options) {
					if gated {
						o.Upstreams[0].Gated = []string{"refs/heads/gated"}
					}
				})
				h.poll(u)
				before := upstreamRefs(t, r)
				tc.change(r)
				newMain := r.Commit("main", map[string]string{"main.txt": "moved\n"})
				after := upstreamRefs(t, r)

				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := h.m.Poll(ctx, u); err != nil {
					t.Fatalf("poll after the renames: %v\nlogs:\n%s", err, h.logs)
				}
				if st, err := h.m.Repo(u); err != nil || st.LastError != "" {
					t.Errorf("status after the poll: %v, last error %q", err, st.LastError)
				}
				tips, err := h.m.RefTips(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for _, ref := range tips {
					got[ref.Name] = ref.Object
				}
				if d := diffRefs(got, after); d != "" {
					t.Errorf("mirror refs differ from the upstream's:\n%s", d)
				}
				if got["refs/heads/main"] != newMain {
					t.Errorf("main %s, want %s (frozen?)", got["refs/heads/main"], newMain)
				}
				// What clients see matches the upstream too.
				served := lsRemoteRefs(t, h.url(u))
				if d := diffRefs(served, after); d != "" {
					t.Errorf("advertised refs differ from the upstream's:\n%s", d)
				}
				dir := RepoDirOf(t, h, u)
				kept := git(t, "", "--git-dir="+dir, "for-each-ref", "--format=%(objectname)", "refs/ballast/keep/")
				for name, obj := range before {
					if after[name] == obj || strings.Contains(kept, obj) {
						continue
					}
					if !reachableFromAny(t, dir, obj, after) {
						t.Errorf("old tip of %s (%s) not kept; keep refs:\n%s", name, obj, kept)
					}
				}
				// Nothing of the fetch's staging is left behind.
				if left := git(t, "", "--git-dir="+dir, "for-each-ref", "refs/ballast/incoming/"); left != "" {
					t.Errorf("staging refs left after the fetch:\n%s", left)
				}
				// And the next poll is a no-op, not another failure.
				if err := h.m.Poll(ctx, u); err != nil {
					t.Fatalf("second poll: %v", err)
				}
			})
		}
	}
}

// upstreamRefs lists the branches and tags of an upstream repository.
func upstreamRefs(t *testing.T, r *gitserver.Repo) map[string]string {
	t.Helper()
	out := r.Git("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/", "refs/tags/")
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if obj, name, ok := strings.Cut(line, " "); ok {
			refs[name] = obj
		}
	}
	return refs
}

// lsRemoteRefs lists what a git client sees at url (branches and tags, no
// peeled lines).
func lsRemoteRefs(t *testing.T, url string) map[string]string {
	t.Helper()
	out := git(t, "", "ls-remote", "--heads", "--tags", url)
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		obj, name, ok := strings.Cut(line, "\t")
		if ok && !strings.HasSuffix(name, "^{}") {
			refs[name] = obj
		}
	}
	return refs
}

// reachableFromAny reports whether obj is (or is an ancestor of) one of the
// refs' commits in the repository at dir: then it needs no keep ref.
func reachableFromAny(t *testing.T, dir, obj string, refs map[string]string) bool {
	t.Helper()
	for _, tip := range refs {
		if _, err := gitErr(t, "", "--git-dir="+dir, "merge-base", "--is-ancestor", obj, tip); err == nil {
			return true
		}
	}
	return false
}

func diffRefs(got, want map[string]string) string {
	var lines []string
	for name, obj := range want {
		if got[name] != obj {
			lines = append(lines, "  "+name+": got "+orNone(got[name])+", want "+obj)
		}
	}
	for name, obj := range got {
		if _, ok := want[name]; !ok {
			lines = append(lines, "  "+name+": got "+obj+", want none")
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
