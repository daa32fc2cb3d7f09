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

// patchMagic starts every patch.
var patchMagic = []byte("BDP1")

// Create returns the patch that makes target from base. Its format:
// "BDP1", a uvarint length and the transforms section (files of the tar
// stored as differences against the base file of the same name, see
// align.go), then one zstd frame of the target content, transformed files
// as differences, compressed with base as raw dictionary (what
// `zstd --patch-from` does) at the library's best level. Both must be at
// most MaxContent.
func Create(base, target []byte) ([]byte, error) {
	if len(base) > MaxContent || len(target) > MaxContent {
		return nil, fmt.Errorf("delta: base %d and target %d bytes: %w (%d)", len(base), len(target), ErrTooLarge, MaxContent)
	}
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(windowFor(len(base), len(target))),
		zstd.WithEncoderCRC(true),
	}
	if len(base) > 8 {
		opts = append(opts, zstd.WithEncoderDictRaw(patchDictID, base))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	defer enc.Close()
	ts, transformed := planTransforms(base, target)
	ctrl := encodeTransforms(ts)
	out := append([]byte(nil), patchMagic...)
	out = binary.AppendUvarint(out, uint64(len(ctrl)))
	out = append(out, ctrl...)
	return enc.EncodeAll(transformed, out), nil
}

// ErrBadPatch is wrapped by Apply for a patch that does not make a target
// of the declared size (corrupt, cut short, made for another base).
var ErrBadPatch = errors.New("bad patch")

// Apply writes the target that patch makes from base to w: exactly size
// bytes, or an error wrapping ErrBadPatch (the caller then takes the whole
// blob). It streams: memory is base plus the decoder's window.
func Apply(base []byte, patch io.Reader, size int64, w io.Writer) error {
	if len(base) > MaxContent || size < 0 || size > MaxContent {
		return fmt.Errorf("%w: base %d and target %d bytes: more than %d", ErrBadPatch, len(base), size, MaxContent)
	}
	// Small inputs may be framed with a larger window than needed.
	br := bufio.NewReader(patch)
	magic := make([]byte, len(patchMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(patchMagic) {
		return fmt.Errorf("%w: not a patch (magic %q)", ErrBadPatch, magic)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > maxControl {
		return fmt.Errorf("%w: transforms section length", ErrBadPatch)
	}
	// Allocate what arrives, not what the length claims.
	ctrl, err := io.ReadAll(io.LimitReader(br, int64(n)))
	if err != nil || uint64(len(ctrl)) != n {
		return fmt.Errorf("%w: transforms section cut short", ErrBadPatch)
	}
	ts, err := decodeTransforms(ctrl, size, int64(len(base)))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	window := uint64(max(windowFor(len(base), int(size)), 8<<20))
	opts := []zstd.DOption{
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(window),
		// Output is bounded by the LimitReader below; a tiny frame still
		// declares at least the minimum window.
		zstd.WithDecoderMaxMemory(max(uint64(size)+1, window)),
		zstd.WithDecoderLowmem(true),
	}
	if len(base) > 8 {
		opts = append(opts, zstd.WithDecoderDictRaw(patchDictID, base))
	}
	dec, err := zstd.NewReader(br, opts...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	defer dec.Close()
	var out io.Writer = errWriter{w}
	if len(ts) > 0 {
		out = &undoWriter{w: out, base: base, ts: ts}
	}
	got, err := io.Copy(out, io.LimitReader(dec, size+1))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return we.err
		}
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	if got != size {
		return fmt.Errorf("%w: makes %d bytes, want %d", ErrBadPatch, got, size)
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
