package verify_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/testutil/gitserver"
	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestVerifyLFS: the gate passes a revision whose LFS objects the edge
// daemon brought aboard, and names the object and path of one whose
// object the upstream does not have. A git-lfs client then reads the
// manifest from the daemon with every upstream stopped.
func TestVerifyLFS(t *testing.T) {
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs")
	s := startEdge(t)
	lfsUp := lfsserver.New(t)
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-lfs\n"
	obj := lfsUp.Upload(t, "fleet/apps", []byte(manifest))
	s.repo.Commit("main", map[string]string{
		".lfsconfig":     "[lfs]\n\turl = " + lfsUp.URL("fleet/apps") + "\n",
		".gitattributes": "deploy/*.yaml filter=lfs diff=lfs merge=lfs -text\n",
		"deploy/cm.yaml": obj.Pointer(),
	})
	img := map[string]v1.Image{"ghcr.io/org/app:1": testimage.Image(t, "linux/amd64", 1, 4<<10)}
	rev1 := s.release(img)
	s.waitSynced(rev1)
	var r1 = s.verify(rev1)
	for deadline := time.Now().Add(60 * time.Second); !r1.Ready && time.Now().Before(deadline); r1 = s.verify(rev1) {
		time.Sleep(200 * time.Millisecond)
	}
	if !r1.Ready || r1.LFSObjects != 1 {
		t.Fatalf("revision with its LFS object aboard: %+v", r1)
	}

	ghost := lfsserver.ObjectOf([]byte("never pushed\n"))
	s.repo.Commit("main", map[string]string{"deploy/ghost.yaml": ghost.Pointer()})
	rev2 := s.release(img)
	s.waitSynced(rev2)
	deadline := time.Now().Add(60 * time.Second)
	r2 := s.verify(rev2)
	for (r2.Ready || len(r2.LFSMissing) == 0 || r2.LFSMissing[0].Reason == "") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		r2 = s.verify(rev2)
	}
	if r2.Ready || len(r2.LFSMissing) != 1 || r2.LFSMissing[0].OID != ghost.OID ||
		!strings.Contains(r2.Reason, "deploy/ghost.yaml") || !strings.Contains(r2.Reason, ghost.OID) {
		t.Fatalf("revision whose LFS object is missing upstream: %+v", r2)
	}

	// rev1 is not deployable either now: Argo CD's `git lfs fetch --all`
	// would fail on the object rev2 points at.
	r1 = s.verify(rev1)
	for deadline := time.Now().Add(30 * time.Second); r1.Ready && time.Now().Before(deadline); r1 = s.verify(rev1) {
		time.Sleep(200 * time.Millisecond) // the pass that failed the fetch records it
	}
	if r1.Ready || !strings.Contains(r1.Reason, ghost.OID) || !strings.Contains(r1.Reason, "other revision") {
		t.Fatalf("rev1 with an object of the history missing: %+v", r1)
	}

	// Every upstream stopped: a client clones rev1's branch state from the
	// daemon and pulls its LFS objects from it.
	lfsUp.Stop()
	work := t.TempDir()
	mirrorRepo := s.mirror + "/git/" + strings.TrimSuffix(strings.TrimPrefix(s.url, "http://"), ".git") + ".git"
	run := func(dir string, env []string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(gitserver.Env(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	clone := filepath.Join(work, "c")
	run(work, []string{"GIT_LFS_SKIP_SMUDGE=1"}, "clone", "--quiet", mirrorRepo, clone)
	run(clone, nil, "checkout", "--quiet", rev1)
	run(clone, nil, "lfs", "install", "--local")
	run(clone, nil, "-c", "lfs.url="+mirrorRepo+"/info/lfs", "lfs", "pull")
	if got, _ := os.ReadFile(filepath.Join(clone, "deploy", "cm.yaml")); string(got) != manifest {
		t.Fatalf("deploy/cm.yaml from the edge = %q", got)
	}
}
