// Package atomicfile replaces files so that a crash at any point leaves
// the old content or the new, never a mix or nothing: write a temp file in
// the same directory, fsync it, rename it over the target, fsync the
// directory (restic's local backend does the same). Temp files are named
// ".tmp-<name>-*", the prefix that archive writers (ocitar.WriteTree, the
// sneakernet export) skip, so one left by a crash is never shipped.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, created with mode perm (before
// umask). The directory must exist. Errors name path.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return Rename(tmp, path)
}

// CreateOnce writes data to path unless path already exists: the data
// goes to a fsynced temp file that is then hard-linked to path (a link,
// unlike a rename, fails when path exists), and the directory is fsynced.
// A crash leaves no file or the whole file. It reports false, and writes
// nothing, when path already existed. The directory must exist.
func CreateOnce(path string, data []byte, perm os.FileMode) (bool, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	return true, SyncDir(dir)
}

// tempPattern is the os.CreateTemp pattern of the temp file for path.
func tempPattern(path string) string { return ".tmp-" + filepath.Base(path) + "-*" }

// Rename moves the complete, fsynced file tmp over path and fsyncs the
// directory of path, so the rename itself survives a power cut. tmp and
// path must be in the same directory.
func Rename(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs the directory dir: its entries (a rename, a new file)
// are then on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
