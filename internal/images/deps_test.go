package images

import (
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"os/exec"
	"strings"
	"testing"
)

// TestEdgeSafeDependencies guards the layering rule: the edge (verify, sync)
// may use this package, so it must not pull in Helm, Kustomize or the
// Kubernetes client libraries.
func TestEdgeSafeDependencies(t *testing.T) {
	goBin := realtest.LookPath(t, "go", "the go tool lists the dependencies")
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"helm.sh/", "sigs.k8s.io/kustomize/", "k8s.io/client-go", "github.com/ballast-dev/ballast/internal/render"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("internal/images depends on %s", dep)
			}
		}
	}
}
