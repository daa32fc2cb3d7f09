package cli

import (
	"strings"
	"testing"

	"github.com/ballast-dev/ballast/internal/verify"
)

// A READY line says what it stands on: the bundle's entries (signatures
// and other attached artifacts included), the git dependencies and the
// LFS objects checked; lines for parts a revision does not have are left
// out.
func TestPrintVerifySaysWhatWasChecked(t *testing.T) {
	var b strings.Builder
	printVerify(&env{stdout: &b}, &verify.Result{Ready: true, Repo: "git.example.com/fleet/apps", Revision: "abc", CommitPresent: true,
		BundlePresent: true, Images: 5, Blobs: 16, Bytes: 1000, Attached: 2, GitDeps: 3, LFSObjects: 4})
	for _, want := range []string{
		"READY  git.example.com/fleet/apps@abc",
		"bundle: present=true images=5 charts=0 blobs=16 bytes=1000 attached=2\n",
		"git dependencies (submodule and remote base commits): 3, 0 not in the mirror, 0 moving refs elsewhere",
		"LFS objects: 4, 0 not on site",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printVerify(&env{stdout: &b}, &verify.Result{Ready: true, Repo: "r", Revision: "abc", CommitPresent: true, BundlePresent: true, Images: 1, Blobs: 2})
	if out := b.String(); strings.Contains(out, "attached") || strings.Contains(out, "git dependencies") || strings.Contains(out, "LFS") {
		t.Errorf("lines for parts the revision does not have:\n%s", out)
	}
}
