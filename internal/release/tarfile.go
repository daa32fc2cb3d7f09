package release

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/ocitar"
)

// WriteLayoutTar writes the OCI layout in dir as a tar file at out,
// crash-safely (temp file, fsync, rename).
func WriteLayoutTar(dir, out string) error {
	f, err := os.CreateTemp(filepath.Dir(out), ".tmp-"+filepath.Base(out)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := ocitar.WriteTree(tw, dir, "", nil); err != nil {
		return fmt.Errorf("tar %s: %w", out, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return atomicfile.Rename(f.Name(), out)
}
