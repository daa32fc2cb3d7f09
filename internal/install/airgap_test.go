package install

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/ballast-dev/ballast/internal/testutil/realtest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// staticBallast builds the ballast binary as a release build does.
func staticBallast(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BALLAST_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "ballast")
	cmd := exec.Command("go", "build", "-o", out, "github.com/ballast-dev/ballast/cmd/ballast")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ballast: %v\n%s", err, b)
	}
	return out
}

// TestAirgapImageRuns writes the image tarball, reads it back the way an
// image importer does, unpacks it and runs ballast and git inside it with
// chroot: the image must be self-sufficient.
func TestAirgapImageRuns(t *testing.T) {
	realtest.LookPath(t, "git", "apt-get install git; .ci/run installs it")
	out := filepath.Join(t.TempDir(), "ballast.tar")
	ref := "ghcr.io/ballast-dev/ballast:test"
	if err := WriteAirgapImage(ImageSpec{Ref: ref, Binary: staticBallast(t)}, out); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(ref)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || cf.Config.Entrypoint[0] != "/usr/local/bin/ballast" {
		t.Fatalf("config: %+v", cf)
	}
	root := t.TempDir()
	unpack(t, img, root)
	realtest.Root(t, "running the unpacked image needs chroot")
	// A container runtime provides /dev; the chroot needs /dev/null at least.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"/usr/local/bin/ballast", "version"}, "ballast ", 0},
		{[]string{"/usr/bin/git", "--version"}, "git version", 0},
		{[]string{"/usr/bin/git", "init", "--bare", "/tmp/r.git"}, "Initialized empty Git repository", 0},
		// The remote helper loads its libraries and answers with its
		// usage (exit 1), not the loader's 127 for a missing library.
		{[]string{"/usr/lib/git-core/git-remote-https"}, "remote-curl: usage", 1},
		{[]string{"/usr/bin/git", "lfs", "version"}, "git-lfs/", 0},
	} {
		if len(tc.args) > 1 && tc.args[1] == "lfs" {
			if _, err := os.Stat("/usr/bin/git-lfs"); err != nil {
				realtest.Missing(t, "git-lfs on the host (copied into the image)", "apt-get install git-lfs")
			}
		}
		cmd := exec.Command("chroot", append([]string{root}, tc.args...)...)
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin", "HOME=/tmp"}
		b, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if code != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d and %q", tc.args, code, b, tc.code, tc.want)
		}
	}
}

func unpack(t *testing.T, img v1.Image, root string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestBuildImageRefusesDynamicBinary(t *testing.T) {
	_, err := BuildImage(ImageSpec{Ref: "x:1", Binary: "/usr/bin/git"})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("err = %v", err)
	}
	_, err = BuildImage(ImageSpec{Ref: "x:1", Binary: "/nonexistent"})
	if err == nil {
		t.Fatal("no error for a missing binary")
	}
}
