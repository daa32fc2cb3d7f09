package release

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/lfs"
)

// maxPointersNamed bounds the paths an unresolved-pointer error lists.
const maxPointersNamed = 5

// checkLFSPointers fails when the checked-out revision under dir still
// holds Git LFS pointer files (or malformed ones): git archive writes an LFS
// file's content only where git-lfs's filters are configured (`git lfs
// install`); otherwise the pointer text would be rendered in place of the
// manifest and the images it names would be silently missing from the
// bundle. Errors are input errors (exit 2) naming the files.
func checkLFSPointers(dir string) error {
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Size() > lfs.MaxPointerSize {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, perr := lfs.ParsePointer(b); !errors.Is(perr, lfs.ErrNotPointer) {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(found) == 0 {
		return nil
	}
	names := found
	if len(names) > maxPointersNamed {
		names = append(names[:maxPointersNamed:maxPointersNamed], fmt.Sprintf("and %d more", len(found)-maxPointersNamed))
	}
	return inputErr(fmt.Errorf("%d file(s) of the revision are Git LFS pointers, not their content (%s): "+
		"install git-lfs and run `git lfs install` where ballast bundle runs, so that the revision is rendered with its LFS files",
		len(found), strings.Join(names, ", ")))
}
