package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ballast-dev/ballast/internal/testutil/lfsserver"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/ballast-dev/ballast/internal/testutil/testimage"
)

// TestBundleLFSManifest: a manifest stored in Git LFS is rendered with its
// content where git-lfs is installed (its image is bundled), and is exit 2
// naming the file where it is not, never a bundle silently missing the
// image.
func TestBundleLFSManifest(t *testing.T) {
	realtest.LookPath(t, "git-lfs", "apt-get install git-lfs")
	f := newBundleFixture(t)
	lfsUp := lfsserver.New(t)
	img := f.reg.Repo("src/lfsapp") + ":1"
	ref, _ := name.ParseReference(img, name.Insecure)
	if err := remote.Write(ref, testimage.Image(t, "linux/amd64", 1, 4<<10)); err != nil {
		t.Fatal(err)
	}
	manifest := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: lfsapp}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: a, image: " + img + "}\n"
	obj := lfsUp.Upload(t, "fleet/apps", []byte(manifest))
	bundleWriteFiles(t, f.repo, map[string]string{
		".lfsconfig":            "[lfs]\n\turl = " + lfsUp.URL("fleet/apps") + "\n",
		".gitattributes":        "apps/web/lfs-*.yaml filter=lfs diff=lfs merge=lfs -text\n",
		"apps/web/lfs-app.yaml": obj.Pointer(),
	})
	// Committed as the pointer it is (no filters configured yet).
	empty := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", empty)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	bundleGit(t, f.repo, "add", ".")
	bundleGit(t, f.repo, "commit", "-q", "-m", "lfs app")
	to := f.reg.Repo("fleet/lfs-bundles")

	_, errOut, code := runCLI(t, "bundle", "--repo", f.repo, "--to", to)
	if code != 2 || !strings.Contains(errOut, "apps/web/lfs-app.yaml") || !strings.Contains(errOut, "git lfs install") {
		t.Fatalf("without git-lfs filters: exit %d, stderr %q; want 2 naming the pointer file", code, errOut)
	}

	bundleGit(t, f.repo, "lfs", "install", "--local")
	r, errOut, code := runBundle(t, "--repo", f.repo, "--to", to)
	if code != 0 {
		t.Fatalf("with git-lfs: exit %d: %s", code, errOut)
	}
	found := false
	for _, im := range r.Images {
		found = found || strings.Contains(im.Ref, "src/lfsapp")
	}
	if !found {
		t.Fatalf("image of the LFS-stored manifest not bundled: %+v", r.Images)
	}
}
