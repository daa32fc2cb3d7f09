package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/klauspost/compress/zstd"
)

// MaxContent bounds the uncompressed size of a base layer and of a target
// layer that a delta is made for, in bytes. A zstd window (the distance a
// match may reach back) is at most 512 MiB in the library, and the base is
// the window's first part, so base and target together must fit in it;
// larger layers go whole. The edge holds the base's content in memory
// while it applies a delta.
const MaxContent = 256 << 20

// ErrTooLarge is wrapped when a layer's content is above MaxContent: it
// goes whole.
var ErrTooLarge = errors.New("layer content too large for a delta")

// patchDictID is the dictionary id of every patch (a raw dictionary has no
// id of its own; the frame names none).
const patchDictID = 0

// windowFor is the zstd window that lets a match anywhere in base reach
// from anywhere in a target of the given size: the next power of two of
// their sum.
func windowFor(base, target int) int {
	n := max(base+target, zstd.MinWindowSize)
	return 1 << bits.Len(uint(n-1))
}

// Patch formats: the magic that starts a patch names its format.
var (
	// patchMagic starts a format 1 patch: transforms section, zstd frame.
	patchMagic = []byte("BDP1")
	// patchMagicV2 starts a format 2 patch: an expansion section (the
	// zlib streams of ELF compressed sections, expand.go) before the
	// transforms section, both working on the expanded contents.
	patchMagicV2 = []byte("BDP2")
)

// Create returns the patch that makes target from base, in format 2 when
// target has zlib-compressed ELF sections that compress/zlib reproduces
// (expand.go), else in format 1; version says which. Format 1: "BDP1", a
// uvarint length and the transforms section (files of the tar stored as
// differences against the base file of the same name, see align.go), then
// one zstd frame of the target content, transformed files as differences,
// compressed with base as raw dictionary (what `zstd --patch-from` does)
// at the library's best level. Format 2: "BDP2", a uvarint length and the
// expansion section, then as format 1 on the expanded base and target.
// Both must be at most MaxContent.
func Create(base, target []byte) (patch []byte, version int, err error) {
	patch, version, _, err = create(base, target, true)
	return patch, version, err
}

// create makes a format 1 patch unless expand allows format 2; for
// format 2 it also returns a zlib probe of the base (findProbe), if any.
func create(base, target []byte, expand bool) ([]byte, int, *ZlibProbe, error) {
	if len(base) > MaxContent || len(target) > MaxContent {
		return nil, 0, nil, fmt.Errorf("delta: base %d and target %d bytes: %w (%d)", len(base), len(target), ErrTooLarge, MaxContent)
	}
	var bx, tx []region
	xbase, xtarget := base, target
	if expand {
		tx, xtarget = findRegions(target, true)
		if len(tx) > 0 {
			bx, xbase = findRegions(base, false)
		}
	}
	bf, tf := tarFiles(base), tarFiles(target)
	if len(tx) > 0 {
		bf, tf = mapFiles(bf, bx), mapFiles(tf, tx)
	}
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(windowFor(len(xbase), len(xtarget))),
		zstd.WithEncoderCRC(true),
	}
	if len(xbase) > 8 {
		opts = append(opts, zstd.WithEncoderDictRaw(patchDictID, xbase))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("delta: %w", err)
	}
	defer enc.Close()
	ts, transformed := planTransforms(xbase, xtarget, bf, tf)
	ctrl := encodeTransforms(ts)
	version := 1
	var probe *ZlibProbe
	out := append([]byte(nil), patchMagic...)
	if len(tx) > 0 {
		version = 2
		probe = findProbe(base, bx, tx)
		x := encodeExpansion(bx, tx)
		out = append(append([]byte(nil), patchMagicV2...), binary.AppendUvarint(nil, uint64(len(x)))...)
		out = append(out, x...)
	}
	out = binary.AppendUvarint(out, uint64(len(ctrl)))
	out = append(out, ctrl...)
	return enc.EncodeAll(transformed, out), version, probe, nil
}

// ErrBadPatch is wrapped by Apply for a patch that does not make a target
// of the declared size (corrupt, cut short, made for another base).
var ErrBadPatch = errors.New("bad patch")

// Apply writes the target that patch (format 1 or 2) makes from base to
// w: exactly size bytes, or an error wrapping ErrBadPatch (the caller then
// takes the whole blob). It streams: memory is base plus the decoder's
// window, and for format 2 the expanded base (at most MaxContent).
func Apply(base []byte, patch io.Reader, size int64, w io.Writer) error {
	return apply(base, patch, size, w, 0)
}

// apply is Apply for a patch of format version (0: either).
func apply(base []byte, patch io.Reader, size int64, w io.Writer, version int) error {
	if len(base) > MaxContent || size < 0 || size > MaxContent {
		return fmt.Errorf("%w: base %d and target %d bytes: more than %d", ErrBadPatch, len(base), size, MaxContent)
	}
	br := bufio.NewReader(patch)
	magic := make([]byte, len(patchMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return fmt.Errorf("%w: not a patch (magic %q)", ErrBadPatch, magic)
	}
	got := 0
	switch string(magic) {
	case string(patchMagic):
		got = 1
	case string(patchMagicV2):
		got = 2
	default:
		return fmt.Errorf("%w: not a patch (magic %q)", ErrBadPatch, magic)
	}
	if version != 0 && got != version {
		return fmt.Errorf("%w: a format %d patch where format %d was declared", ErrBadPatch, got, version)
	}
	// Allocate what arrives, not what a length claims.
	section := func(what string) ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > maxControl {
			return nil, fmt.Errorf("%w: %s length", ErrBadPatch, what)
		}
		b, err := io.ReadAll(io.LimitReader(br, int64(n)))
		if err != nil || uint64(len(b)) != n {
			return nil, fmt.Errorf("%w: %s cut short", ErrBadPatch, what)
		}
		return b, nil
	}
	xbase, xsize := base, size
	var tx []region
	if got == 2 {
		x, err := section("expansion section")
		if err != nil {
			return err
		}
		var bx []region
		var bsize int64
		bx, tx, bsize, xsize, err = decodeExpansion(x, int64(len(base)), size)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadPatch, err)
		}
		if xbase, err = expandBase(base, bx, bsize); err != nil {
			return fmt.Errorf("%w: %w", ErrBadPatch, err)
		}
	}
	ctrl, err := section("transforms section")
	if err != nil {
		return err
	}
	ts, err := decodeTransforms(ctrl, xsize, int64(len(xbase)))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	// Small inputs may be framed with a larger window than needed.
	window := uint64(max(windowFor(len(xbase), int(xsize)), 8<<20))
	opts := []zstd.DOption{
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(window),
		// Output is bounded by the LimitReader below; a tiny frame still
		// declares at least the minimum window.
		zstd.WithDecoderMaxMemory(max(uint64(xsize)+1, window)),
		zstd.WithDecoderLowmem(true),
	}
	if len(xbase) > 8 {
		opts = append(opts, zstd.WithDecoderDictRaw(patchDictID, xbase))
	}
	dec, err := zstd.NewReader(br, opts...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	defer dec.Close()
	var out io.Writer = errWriter{w}
	var pw *packWriter
	if got == 2 {
		pw = &packWriter{w: out, rs: tx}
		out = pw
	}
	if len(ts) > 0 {
		out = &undoWriter{w: out, base: xbase, ts: ts}
	}
	n, err := io.Copy(out, io.LimitReader(dec, xsize+1))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return we.err
		}
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	if n != xsize {
		return fmt.Errorf("%w: makes %d bytes, want %d", ErrBadPatch, n, xsize)
	}
	if pw != nil && (pw.ri != len(pw.rs) || pw.n != size) {
		return fmt.Errorf("%w: makes %d bytes, want %d", ErrBadPatch, pw.n, size)
	}
	return nil
}

// writeError marks a failure of the writer given to Apply, which is not
// the patch's fault.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}
