package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// TestArgoCDLFS: an app whose ConfigMap manifest is stored in Git LFS, on a
// separate LFS server (lfs-test-server, named by the repository's
// .lfsconfig). The edge mirrors the LFS objects; with every upstream
// stopped (git, LFS, registry), Argo CD with `enableLfs: "true"` on the
// repository Secret renders the real manifest from the mirror and syncs it.
func TestArgoCDLFS(t *testing.T) {
	s := newStack(t, false)
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs; Argo CD's repo-server runs it for enableLfs repositories")
	lfsUp := lfsserver.New(t)
	lfsURL := lfsUp.URL(repoName)
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-lfs, namespace: default}\ndata:\n  payload: \"" +
		strings.Repeat("lfs", 2000) + "\"\n"
	obj := lfsUp.Upload(t, repoName, []byte(manifest))
	s.repo.Commit("main", map[string]string{
		".lfsconfig":     "[lfs]\n\turl = " + lfsURL + "\n",
		".gitattributes": "config.yaml filter=lfs diff=lfs merge=lfs -text\n",
		"config.yaml":    obj.Pointer(),
	})
	image1 := s.reg.Addr + "/app/web:rev1"
	s.pushImage("app/web:rev1")
	rev1 := s.commit(image1, "rev1")
	s.bundle(rev1)
	// The gate's own check now includes the LFS object.
	waitFor(t, 120*time.Second, "edge has rev1, its bundle and its LFS object", func() (bool, error) { return s.ready(rev1) })

	// What an operator configures for an LFS repository: enableLfs on the
	// repository Secret `ballast install` generated, and, because this
	// repository's .lfsconfig names a separate LFS host, that endpoint
	// rewritten to the mirror in the repo-server's git config.
	id := strings.TrimSuffix(strings.TrimPrefix(s.upstream, "http://"), ".git")
	mirrorRepo := "http://" + s.edgeHTTP + "/git/" + id + ".git"
	objs, err := decodeYAML(s.generated("repositories.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	patched := 0
	for _, o := range filterKinds(objs, "Secret") {
		if str(o.Object, "stringData", "url") == mirrorRepo {
			if err := setNested(o.Object, "true", "stringData", "enableLfs"); err != nil {
				t.Fatal(err)
			}
			s.cluster.apply(t, "argocd", o)
			patched++
		}
	}
	if patched != 1 {
		t.Fatalf("repository Secret for %s not found in repositories.yaml", mirrorRepo)
	}
	f, err := os.OpenFile(repoGitConfig(s.dir), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[url %q]\n\tinsteadOf = %s\n", mirrorRepo+"/info/lfs", lfsURL)
	f.Close()

	// Every upstream gone.
	s.git.Stop()
	lfsUp.Stop()
	s.reg.Stop()
	s.cluster.applyYAML(t, "argocd", s.appYAML)
	took := s.waitSynced(rev1, 180*time.Second)
	cm, err := s.cluster.kube.CoreV1().ConfigMaps("default").Get(t.Context(), "from-lfs", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap from the LFS-stored manifest: %v (application %+v)", err, s.app())
	}
	if got := cm.Data["payload"]; got != strings.Repeat("lfs", 2000) {
		t.Fatalf("ConfigMap payload %d bytes, want the LFS object's", len(got))
	}
	if got := s.image(); got != image1 {
		t.Fatalf("deployment image %s, want %s", got, image1)
	}
	t.Logf("TIMING LFS app with every upstream stopped: Application created → Succeeded in %.1fs", took.Seconds())
}

func setNested(obj map[string]any, value string, fields ...string) error {
	m := obj
	for _, f := range fields[:len(fields)-1] {
		next, ok := m[f].(map[string]any)
		if !ok {
			return fmt.Errorf("field %s missing", f)
		}
		m = next
	}
	m[fields[len(fields)-1]] = value
	return nil
}
