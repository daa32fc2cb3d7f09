package lfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// store holds the verified objects of one repository:
//
//	<dir>/objects/<oid[0:2]>/<oid[2:4]>/<oid>   committed, verified
//	<dir>/staging/                              git-lfs's lfs.storage: never trusted
//
// An object becomes visible only by a rename after its bytes were hashed,
// its size checked and the file fsynced; the directory is fsynced after.
type store struct{ dir string }

func (s store) path(oid string) string {
	return filepath.Join(s.dir, "objects", oid[0:2], oid[2:4], oid)
}

func (s store) staging() string { return filepath.Join(s.dir, "staging") }

// has reports whether the object is committed with the expected size.
func (s store) has(p Pointer) bool {
	fi, err := os.Stat(s.path(p.OID))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == p.Size
}

// open opens a committed object.
func (s store) open(p Pointer) (*os.File, error) {
	if !s.has(p) {
		return nil, fs.ErrNotExist
	}
	return os.Open(s.path(p.OID))
}

// errMismatch: bytes on disk that are not the object they claim to be.
var errMismatch = errors.New("content does not match its sha256 and size")

// commitStaged verifies the object git-lfs left in staging and renames it
// into the store. A missing staged object returns fs.ErrNotExist; one that
// fails verification is removed and returns errMismatch.
func (s store) commitStaged(p Pointer) error {
	src := filepath.Join(s.staging(), "objects", p.OID[0:2], p.OID[2:4], p.OID)
	if err := verifyFile(src, p, true); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(src)
		}
		return err
	}
	dst := s.path(p.OID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	for _, d := range []string{filepath.Dir(dst), filepath.Dir(filepath.Dir(dst))} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// verifyFile hashes the file at path and compares sha256 and size with p;
// with sync, it also fsyncs the file.
func verifyFile(path string, p Pointer, sync bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if n != p.Size || hex.EncodeToString(h.Sum(nil)) != p.OID {
		return fmt.Errorf("LFS object %s: %w (%d bytes on disk, %d expected)", p.OID, errMismatch, n, p.Size)
	}
	if sync {
		return f.Sync()
	}
	return nil
}

// recheck re-hashes every committed object and removes those whose bytes
// do not match their name, and clears the staging area (an interrupted
// fetch is redone, never trusted). It returns the objects kept, by oid.
func (s store) recheck() (map[string]int64, int, error) {
	_ = os.RemoveAll(s.staging())
	_ = os.RemoveAll(s.incoming())
	kept := map[string]int64{}
	bad := 0
	root := filepath.Join(s.dir, "objects")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !IsOID(name) || !strings.HasSuffix(filepath.Dir(p), filepath.Join(name[0:2], name[2:4])) || !fi.Mode().IsRegular() {
			bad++
			return os.Remove(p)
		}
		if err := verifyFile(p, Pointer{OID: name, Size: fi.Size()}, false); err != nil {
			bad++
			return os.Remove(p)
		}
		kept[name] = fi.Size()
		return nil
	})
	return kept, bad, err
}

// prune removes committed objects not in keep.
func (s store) prune(have map[string]int64, keep map[string]bool) (int, error) {
	n := 0
	for oid := range have {
		if keep[oid] {
			continue
		}
		if err := os.Remove(s.path(oid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		delete(have, oid)
		n++
	}
	return n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// incoming is where imported objects are written before their commit;
// like staging, never trusted: recheck clears it.
func (s store) incoming() string { return filepath.Join(s.dir, "incoming") }

// put writes the object p from r (at most p.Size+1 bytes are read) into
// the store: temp file in incoming, sha256 and size checked, fsync,
// rename, fsync the directories. An object already committed is left as
// it is and r is not read (false). Bytes that do not match p are an
// errMismatch error and nothing is committed.
func (s store) put(p Pointer, r io.Reader) (bool, error) {
	if s.has(p) {
		return false, nil
	}
	if err := os.MkdirAll(s.incoming(), 0o755); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(s.incoming(), p.OID+"-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, p.Size+1))
	if err != nil {
		return false, err
	}
	if n != p.Size || hex.EncodeToString(h.Sum(nil)) != p.OID {
		return false, fmt.Errorf("LFS object %s: %w (%d bytes read, %d expected)", p.OID, errMismatch, n, p.Size)
	}
	if err := f.Sync(); err != nil {
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	dst := s.path(p.OID)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return false, err
	}
	for _, d := range []string{filepath.Dir(dst), filepath.Dir(filepath.Dir(dst))} {
		if err := syncDir(d); err != nil {
			return false, err
		}
	}
	return true, nil
}
