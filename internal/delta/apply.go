package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci"
)

// ErrMismatch is wrapped by Reconstruct when a base, a content or the
// blob made does not hash to what the delta records: the caller takes the
// whole blob instead.
var ErrMismatch = errors.New("delta: digest mismatch")

// LoadBase reads the base layer blob from r (its stored, compressed bytes),
// checks them against base's digest and size, decompresses them and checks
// the content against base's diffid and content size; it returns the
// content. Memory: the content (at most MaxContent bytes).
func LoadBase(ctx context.Context, base Layer, r io.Reader) ([]byte, error) {
	if base.Content < 0 || base.Content > MaxContent {
		return nil, fmt.Errorf("delta base %s: content %d bytes out of range", base.Digest, base.Content)
	}
	vr := oci.VerifyReader(r, base.Descriptor())
	zr, err := Decompress(FormatOf(base.MediaType), vr)
	if err != nil {
		return nil, fmt.Errorf("delta base %s: %w: %w", base.Digest, ErrMismatch, err)
	}
	defer zr.Close()
	content := bytes.NewBuffer(make([]byte, 0, base.Content))
	if _, err := io.Copy(content, io.LimitReader(ctxReader{ctx, zr}, base.Content+1)); err != nil {
		return nil, fmt.Errorf("delta base %s: %w: %w", base.Digest, ErrMismatch, err)
	}
	// The compressed stream may end before the blob does (padding, a
	// second member): the blob's own digest covers every byte.
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return nil, fmt.Errorf("delta base %s: %w: %w", base.Digest, ErrMismatch, err)
	}
	if err := checkContent(content.Bytes(), base); err != nil {
		return nil, fmt.Errorf("delta base %s: %w", base.Digest, err)
	}
	return content.Bytes(), nil
}

func checkContent(b []byte, l Layer) error {
	if int64(len(b)) != l.Content {
		return fmt.Errorf("%w: content is %d bytes, want %d", ErrMismatch, len(b), l.Content)
	}
	if got := sha256.Sum256(b); (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", got)}) != l.DiffID {
		return fmt.Errorf("%w: content is not %s", ErrMismatch, l.DiffID)
	}
	return nil
}

// Reconstruct makes d's target blob from the base's verified content
// (LoadBase) and the patch: it applies the patch, checks the content made
// against the target's diffid, compresses it by the recipe and checks the
// result against the target's digest and size, streaming into w. w is not
// to be trusted until Reconstruct returns nil: any failure wraps
// ErrBadPatch or ErrMismatch (take the whole blob) or is w's own.
func Reconstruct(ctx context.Context, d *Delta, base []byte, patch io.Reader, w io.Writer) error {
	if err := d.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	blob := &hashWriter{w: w, h: sha256.New()}
	zw, err := d.Recipe.Compress(blob)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	content := &hashWriter{w: zw, h: sha256.New()}
	if err := apply(base, ctxReader{ctx, patch}, d.Target.Content, content, d.version()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", content.h.Sum(nil))}); got != d.Target.DiffID {
		return fmt.Errorf("%w: target content is %s, want %s", ErrMismatch, got, d.Target.DiffID)
	}
	if blob.n != d.Target.Size {
		return fmt.Errorf("%w: target blob made is %d bytes, want %d (recipe %s)", ErrMismatch, blob.n, d.Target.Size, d.Recipe)
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", blob.h.Sum(nil))}); got != d.Target.Digest {
		return fmt.Errorf("%w: target blob made is %s, want %s (recipe %s)", ErrMismatch, got, d.Target.Digest, d.Recipe)
	}
	return nil
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ErrCompressorDiffers is returned by ProbeBase when this build's
// compressor no longer makes the base blob by its recorded recipe: the
// target could not be made exact either, so the layer goes whole before
// its patch crosses the link.
var ErrCompressorDiffers = errors.New("delta: this build's compressor does not reproduce the base")

// ProbeBase compresses the base's verified content (LoadBase) by the
// recipe recorded for it and checks the result against the base's digest.
// Without a base recipe it returns nil (nothing to check). Cost: one
// compression of the base, no memory beyond the compressor's.
//
// For a format 2 delta with a zlib probe (AnnotationBaseZlib), it also
// checks that this build's compress/zlib makes the probed stream of the
// base again: the target's streams depend on it.
func ProbeBase(ctx context.Context, d *Delta, content []byte) error {
	if d.BaseZlib != nil && d.version() == 2 {
		if err := probeZlib(*d.BaseZlib, content); err != nil {
			return fmt.Errorf("%w: %w", ErrCompressorDiffers, err)
		}
	}
	if d.BaseRecipe == nil {
		return nil
	}
	blob := &hashWriter{w: io.Discard, h: sha256.New()}
	zw, err := d.BaseRecipe.Compress(blob)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCompressorDiffers, err)
	}
	for off := 0; off < len(content); off += 1 << 20 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := zw.Write(content[off:min(off+1<<20, len(content))]); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", blob.h.Sum(nil))}); got != d.Base.Digest || blob.n != d.Base.Size {
		return fmt.Errorf("%w: recipe %s makes %s (%d bytes), want %s", ErrCompressorDiffers, d.BaseRecipe, got, blob.n, d.Base.Digest)
	}
	return nil
}
