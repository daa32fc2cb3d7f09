package verify_test

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// The gate checks the LFS objects of a revision's git dependencies: a
// remote base whose LFS object the daemon brought aboard is ready; a
// submodule whose object the LFS upstream lacks is named (path, oid,
// the dependency) and never ready.
func TestVerifyLFSOfGitDeps(t *testing.T) {
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs")
	s := startEdge(t)
	lfsUp := lfsserver.New(t)
	depHost := gitserver.New(t)
	attrs := "*.bin filter=lfs diff=lfs merge=lfs -text\n"
	base := depHost.CreateRepo(t, "fleet/base")
	obj := lfsUp.Upload(t, "fleet/base", []byte("kind: ConfigMap\n# "+strings.Repeat("x", 1024)+"\n"))
	c1 := base.Commit("main", map[string]string{".lfsconfig": "[lfs]\n\turl = " + lfsUp.URL("fleet/base") + "\n",
		".gitattributes": attrs, "deploy/cm.bin": obj.Pointer()})
	base.Tag("v1", c1)
	s.gitDeps = []bundle.GitDep{{Kind: bundle.GitDepRemoteBase, URL: depHost.URL("fleet/base"), Commit: c1, Path: "deploy", Ref: "v1"}}
	img := map[string]v1.Image{"ghcr.io/org/app:1": testimage.Image(t, "linux/amd64", 1, 4<<10)}
	rev1 := s.release(img)
	s.waitSynced(rev1)
	r := s.verify(rev1)
	for deadline := time.Now().Add(60 * time.Second); !r.Ready && time.Now().Before(deadline); r = s.verify(rev1) {
		time.Sleep(200 * time.Millisecond)
	}
	if !r.Ready {
		t.Fatalf("revision whose remote base's LFS object is aboard: %+v", r)
	}

	lib := depHost.CreateRepo(t, "fleet/lib")
	ghost := lfsserver.ObjectOf([]byte("never pushed\n"))
	libSHA := lib.Commit("main", map[string]string{".lfsconfig": "[lfs]\n\turl = " + lfsUp.URL("fleet/lib") + "\n",
		".gitattributes": attrs, "data/ghost.bin": ghost.Pointer()})
	s.gitDeps = append(s.gitDeps, bundle.GitDep{Kind: bundle.GitDepSubmodule, URL: depHost.URL("fleet/lib"), Commit: libSHA, Path: "vendor/lib"})
	rev2 := s.release(img)
	s.waitSynced(rev2)
	r = s.verify(rev2)
	for deadline := time.Now().Add(60 * time.Second); (r.Ready || len(r.LFSMissing) == 0 || r.LFSMissing[0].Reason == "") && time.Now().Before(deadline); r = s.verify(rev2) {
		time.Sleep(200 * time.Millisecond)
	}
	if r.Ready || len(r.LFSMissing) != 1 || r.LFSMissing[0].OID != ghost.OID || !strings.Contains(r.Reason, "submodule vendor/lib") ||
		!strings.Contains(r.Reason, "data/ghost.bin") || !strings.Contains(r.Reason, ghost.OID) {
		t.Fatalf("revision whose submodule's LFS object is missing upstream: %+v", r)
	}
	t.Log(r.Reason)
	if r := s.verify(rev1); !r.Ready {
		t.Fatalf("the first revision after the second arrived: %+v", r)
	}
}
