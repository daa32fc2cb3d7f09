package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/edgeregistry"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

// TestOCIConformance runs the OCI distribution-spec conformance suite (pull,
// push, content discovery, content management) against the edge registry,
// with write credentials. The parts Distribution does not implement are
// switched off; docs/REGISTRY.md lists them. The suite binary is built once
// from the Go module proxy and cached outside the repository.
func TestOCIConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	bin := conformanceBinary(t)
	s := edgeregistry.Start(t, edgeregistry.Options{})
	c := s.Credentials()
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+s.Host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME="+c.Username,
		"OCI_PASSWORD="+c.Password,
		"OCI_RESULTS_DIR="+results,
		"OCI_LOG=warn",
		// The current names of OCI_TEST_PULL, _PUSH, _CONTENT_DISCOVERY
		// and _CONTENT_MANAGEMENT (the old ones still work, with warnings).
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_BLOBS_DELETE=true",
		// Off by default in the suite; Distribution implements it.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		// Not implemented by Distribution v3.1.2 (docs/REGISTRY.md).
		"OCI_DATA_SHA512=false",
		"OCI_API_REFERRER=false",
		"OCI_DATA_SUBJECT=false",
		"OCI_DATA_SUBJECT_MISSING=false",
		"OCI_DATA_SUBJECT_LIST=false",
	)
	cmd.Env = append(cmd.Env, conformanceExtraEnv()...)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance suite output:\n%s", out)
	if err != nil {
		t.Fatalf("conformance suite failed (%v); report in %s", err, results)
	}
}

// conformanceBinary returns the built suite, building it on first use into
// the user cache dir ($XDG_CACHE_HOME/ballast/...). Building needs the Go
// module proxy; a failure is a test failure, not a skip, so CI never
// silently drops conformance.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	_, version, _ := strings.Cut(conformanceModule, "@")
	bin := filepath.Join(cache, "ballast", "oci-conformance-"+version+"-"+runtime.Version(), "conformance")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// `go test` puts its own GOROOT/bin first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command needed to build the conformance suite: %v", err)
	}
	dl := exec.Command(goBin, "mod", "download", "-json", conformanceModule)
	dl.Dir = t.TempDir()
	var stderr bytes.Buffer
	dl.Stderr = &stderr
	out, err := dl.Output()
	if err != nil {
		t.Fatalf("download %s: %v\n%s", conformanceModule, err, stderr.Bytes())
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download output %q: %v", out, err)
	}
	// The module cache is read-only: build a writable copy.
	src := filepath.Join(t.TempDir(), "conformance")
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		t.Fatalf("copy conformance source: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	build := exec.Command(goBin, "build", "-o", tmp, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("build conformance suite: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// conformanceExtraEnv lets a developer re-enable parts to see how they fail
// (BALLAST_CONFORMANCE_ENV="OCI_DATA_SHA512=true OCI_API_REFERRER=true").
func conformanceExtraEnv() []string { return strings.Fields(os.Getenv("BALLAST_CONFORMANCE_ENV")) }
