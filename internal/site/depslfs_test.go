package site_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/site"
)

// LFS files inside a submodule and inside a remote base's repository:
// sync --once fetches their objects (for the needed commits only) while
// the link is up, and the mirror serves them through the same LFS batch
// API, so a checkout of the submodule's commit and kustomize's fetch of
// the base smudge them from the edge with every upstream stopped.
func TestSyncOnceKeepsLFSOfGitDeps(t *testing.T) {
	w := newDepsWorld(t)
	libBlob := []byte("submodule LFS content " + strings.Repeat("l", 2048) + "\n")
	baseBlob := []byte("kind: ConfigMap\nmetadata: {name: from-base-lfs}\n# " + strings.Repeat("b", 2048) + "\n")
	libObj := w.lfsUp.Upload(t, "fleet/lib", libBlob)
	baseObj := w.lfsUp.Upload(t, "fleet/base", baseBlob)
	attrs := "*.bin filter=lfs diff=lfs merge=lfs -text\n"
	w.libSHA = w.lib.Commit("main", map[string]string{
		".lfsconfig": "[lfs]\n\turl = " + w.lfsUp.URL("fleet/lib") + "\n", ".gitattributes": attrs, "data/lib.bin": libObj.Pointer()})
	w.baseSHA = w.bas.Commit("main", map[string]string{
		".lfsconfig": "[lfs]\n\turl = " + w.lfsUp.URL("fleet/base") + "\n", ".gitattributes": attrs, "deploy/cm.bin": baseObj.Pointer()})
	w.bas.Tag("v1.2", w.baseSHA)
	// A later commit of the base, not needed: its object is never fetched.
	w.bas.Commit("main", map[string]string{"deploy/other.bin": w.lfsUp.Upload(t, "fleet/base", []byte("not needed\n")).Pointer()})
	sha := w.release([]byte("app LFS content\n"))

	cfg := w.siteConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := site.Open(ctx, cfg, site.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.SyncOnce(ctx); err != nil {
		t.Fatalf("sync --once: %v", err)
	}
	libURL, baseURL := w.git.URL("fleet/lib"), w.git.URL("fleet/base")
	for _, c := range []struct{ url, commit string }{{libURL, w.libSHA}, {baseURL, w.baseSHA}} {
		rep, err := s.LFS.Revision(ctx, c.url, c.commit)
		if err != nil || !rep.Complete || rep.Objects != 1 {
			t.Fatalf("LFS of %s at %s: %v %+v", c.url, c.commit, err, rep)
		}
	}
	for _, st := range s.LFS.Status() {
		if strings.HasSuffix(st.ID, "fleet/base") && st.Objects != 1 {
			t.Errorf("base repository keeps %d LFS objects, want only the needed commit's 1", st.Objects)
		}
	}
	if rep, err := s.LFS.Revision(ctx, w.appsURL, sha); err != nil || !rep.Complete {
		t.Fatalf("LFS of the app revision: %v %+v", err, rep)
	}

	// Every upstream stopped: git and LFS.
	w.git.Stop()
	w.lfsUp.Stop()
	srv := httptest.NewServer(s.LFS.Wrap(s.Mirror.GitHandler()))
	defer srv.Close()
	mirrorOf := func(u string) string {
		id, err := gitdeps.ID(u)
		if err != nil {
			t.Fatal(err)
		}
		return srv.URL + "/git/" + id + ".git"
	}
	// The repo-server's git sends every upstream URL to the mirror; LFS
	// endpoints named by .lfsconfig likewise.
	rules := []string{
		"-c", "url." + mirrorOf(libURL) + "/info/lfs.insteadOf=" + w.lfsUp.URL("fleet/lib"),
		"-c", "url." + mirrorOf(baseURL) + "/info/lfs.insteadOf=" + w.lfsUp.URL("fleet/base"),
	}
	for _, c := range []struct {
		url, ref, file string
		want           []byte
	}{{libURL, w.libSHA, "data/lib.bin", libBlob}, {baseURL, "v1.2", "deploy/cm.bin", baseBlob}} {
		dir := t.TempDir()
		clientGit(t, dir, nil, "init", "-q")
		clientGit(t, dir, nil, "lfs", "install", "--local")
		clientGit(t, dir, nil, "fetch", "-q", "--depth=1", mirrorOf(c.url), c.ref)
		clientGit(t, dir, nil, append(rules, "checkout", "-q", "FETCH_HEAD")...)
		got, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil || string(got) != string(c.want) {
			t.Fatalf("%s at %s: %s after checkout from the edge: %d bytes (%v), want the %d-byte object", c.url, c.ref, c.file, len(got), err, len(c.want))
		}
	}
}
