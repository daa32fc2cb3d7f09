package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// VerifyReader returns a reader of the d.Size bytes of content d from r that
// checks them as they stream: it returns io.EOF only after exactly d.Size
// bytes that hash to d.Digest; bytes that hash to something else end with an
// error wrapping ErrDigestMismatch, and a source that ends early with one
// wrapping io.ErrUnexpectedEOF. It never reads past d.Size from r. d.Digest
// must be sha256 (CheckDigest).
func VerifyReader(r io.Reader, d v1.Descriptor) io.Reader {
	return &verifyReader{r: r, d: d, left: d.Size, h: sha256.New()}
}

type verifyReader struct {
	r    io.Reader
	d    v1.Descriptor
	left int64
	h    hash.Hash
	err  error // sticky, once the end was judged
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.left <= 0 {
		v.err = v.judge()
		return 0, v.err
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	switch {
	case v.left == 0:
		// The last byte arrived: the digest decides before the reader
		// may see the end of the stream.
		if jerr := v.judge(); jerr != io.EOF {
			v.err = jerr
			return n, jerr
		}
		return n, nil
	case err == io.EOF:
		v.err = fmt.Errorf("content %s: source ended at byte %d of %d: %w", v.d.Digest, v.d.Size-v.left, v.d.Size, io.ErrUnexpectedEOF)
		return n, v.err
	}
	return n, err
}

// judge compares the hash of all d.Size bytes with d.Digest.
func (v *verifyReader) judge() error {
	if got := hex.EncodeToString(v.h.Sum(nil)); v.d.Digest.Algorithm != "sha256" || got != v.d.Digest.Hex {
		return fmt.Errorf("content %s: its %d bytes hash to sha256:%s: %w", v.d.Digest, v.d.Size, got, ErrDigestMismatch)
	}
	return io.EOF
}
