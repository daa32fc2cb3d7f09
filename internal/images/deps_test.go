package images

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEdgeSafeDependencies guards the layering rule: the edge (verify, sync)
// may use this package, so it must not pull in Helm, Kustomize or the
// Kubernetes client libraries.
func TestEdgeSafeDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("SKIPPED LOUDLY: the go tool is not on PATH, cannot list dependencies")
	}
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
