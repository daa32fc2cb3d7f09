// Package ocitar reads and writes tar files safely: one pass indexes an
// archive (refusing absolute paths, "..", links, devices, duplicates and
// truncation), then files are read in place without extracting. It uses
// only the standard library, so parsers built on it fuzz fast.
package ocitar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Archive is a tar file opened for random access: one pass indexes its
// entries (refusing unsafe ones), then files are read in place, never
// extracted.
type Archive struct {
	r       io.ReaderAt
	c       io.Closer
	entries map[string]tarEntry
	names   []string
}

type tarEntry struct {
	off, size int64
}

// MaxEntries bounds the entries indexed from one archive.
const MaxEntries = 1 << 20

// Open indexes the tar file at p. Only regular files and directories are
// accepted: absolute paths, "..", links, devices and duplicate names are
// refused, as is a truncated archive.
func Open(p string) (*Archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	a, err := Read(f, fi.Size(), f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tar %s: %w", p, err)
	}
	return a, nil
}

// Read indexes a tar archive of size bytes read through r, as Open does;
// Close closes c (may be nil).
func Read(r io.ReaderAt, size int64, c io.Closer) (*Archive, error) {
	if c == nil {
		c = io.NopCloser(nil)
	}
	return indexTar(r, size, c)
}

// countingReader tells where in the file the tar reader is, so each entry's
// data offset is known (archive/tar reads headers exactly, without
// buffering ahead).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func indexTar(r io.ReaderAt, size int64, c io.Closer) (*Archive, error) {
	cr := &countingReader{r: io.NewSectionReader(r, 0, size)}
	tr := tar.NewReader(cr)
	a := &Archive{r: r, c: c, entries: map[string]tarEntry{}}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading entry %d: %w (truncated or corrupted archive?)", len(a.names)+1, err)
		}
		name, err := CleanName(h.Name)
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("entry %q: type %q refused (only regular files and directories)", h.Name, string(h.Typeflag))
		}
		if _, dup := a.entries[name]; dup {
			return nil, fmt.Errorf("entry %q appears twice", h.Name)
		}
		if len(a.names) >= MaxEntries {
			return nil, fmt.Errorf("more than %d entries", MaxEntries)
		}
		off := cr.n
		if h.Size < 0 || off+h.Size > size {
			return nil, fmt.Errorf("entry %q: %d bytes at offset %d run past the end of the file (truncated archive)", h.Name, h.Size, off)
		}
		a.entries[name] = tarEntry{off: off, size: h.Size}
		a.names = append(a.names, name)
		// Skip the data by reading it (archive/tar would seek on an
		// io.Seeker, which the counting wrapper is not).
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return nil, fmt.Errorf("entry %q: %w (truncated archive?)", h.Name, err)
		}
	}
	if len(a.names) == 0 {
		return nil, errors.New("empty archive")
	}
	// archive/tar also ends cleanly when the file stops exactly between two
	// entries: only the end-of-archive marker (two zero blocks) tells a
	// whole archive from one cut at an entry boundary.
	if !zeroTrailer(r, cr.n) {
		return nil, errors.New("no end-of-archive marker after the last entry (truncated archive)")
	}
	return a, nil
}

// zeroTrailer reports whether the 1024 bytes before end are zeros.
func zeroTrailer(r io.ReaderAt, end int64) bool {
	if end < 1024 {
		return false
	}
	buf := make([]byte, 1024)
	if _, err := r.ReadAt(buf, end-1024); err != nil {
		return false
	}
	for _, b := range buf {
		if b != 0 {
			return false
		}
	}
	return true
}

// CleanName returns the cleaned slash path of a tar entry name, or an
// error for names that could escape the archive's root.
func CleanName(n string) (string, error) {
	if n == "" || strings.ContainsRune(n, 0) || strings.Contains(n, `\`) {
		return "", fmt.Errorf("entry %q: bad name", n)
	}
	if strings.HasPrefix(n, "/") || filepath.IsAbs(n) {
		return "", fmt.Errorf("entry %q: absolute path refused", n)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
		if seg == ".." {
			return "", fmt.Errorf("entry %q: path with .. refused", n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", fmt.Errorf("entry %q: bad name", n)
	}
	return c, nil
}

// Names lists the archive's files in archive order.
func (a *Archive) Names() []string { return append([]string(nil), a.names...) }

// File returns a reader over one file (its size is the reader's Size);
// an absent name is an error wrapping fs.ErrNotExist.
func (a *Archive) File(name string) (*io.SectionReader, error) {
	e, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NewSectionReader(a.r, e.off, e.size), nil
}

// Close closes the file.
func (a *Archive) Close() error { return a.c.Close() }

// WriteTree adds the regular files under dir to tw below prefix, in sorted
// order with fixed metadata, so the same tree makes the same bytes.
func WriteTree(tw *tar.Writer, dir, prefix string, onFile func(name string, size int64)) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".tmp-") {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, rel := range files {
		name := path.Join(prefix, rel)
		if err := addFile(tw, filepath.Join(dir, filepath.FromSlash(rel)), name); err != nil {
			return err
		}
		if onFile != nil {
			fi, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
			onFile(name, fi.Size())
		}
	}
	return nil
}

func addFile(tw *tar.Writer, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("%s changed while archived", src)
	}
	return nil
}
