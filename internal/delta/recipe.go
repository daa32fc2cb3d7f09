package delta

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression formats a Recipe knows.
const (
	FormatNone = "none" // an uncompressed tar layer
	FormatGzip = "gzip"
	FormatZstd = "zstd"
)

// Compressor libraries a Recipe knows: the Go standard library's
// compress/gzip (what go-containerregistry, ko, crane and the Docker engine
// use for gzip) and github.com/klauspost/compress (gzip and zstd; what
// go-containerregistry, containerd and BuildKit use for zstd).
const (
	LibGo        = "go"
	LibKlauspost = "klauspost"
)

// MaxRecipeSize bounds a recipe's encoded form, in bytes.
const MaxRecipeSize = 4096

// Recipe says how a layer's compressed bytes are made from its uncompressed
// content, exactly: the same compressor, level and header fields give the
// same bytes (with the same library version, which the digest check at the
// edge catches). Its encoded form (String, ParseRecipe) is the JSON object
// of the fields below, carried in an annotation.
type Recipe struct {
	Format string `json:"format"`          // FormatNone, FormatGzip or FormatZstd
	Lib    string `json:"lib,omitempty"`   // LibGo or LibKlauspost; empty for FormatNone
	Level  int    `json:"level,omitempty"` // gzip: 1..9 or -1 (default); zstd: 1..4 (klauspost EncoderLevel)
	// gzip header fields (RFC 1952): file name, comment, extra field,
	// modification time (Unix seconds, 0 for none) and OS byte.
	Name    string `json:"name,omitempty"`
	Comment string `json:"comment,omitempty"`
	Extra   string `json:"extra,omitempty"` // base64
	MTime   int64  `json:"mtime,omitempty"`
	OS      int    `json:"os,omitempty"`
}

// String is the recipe's encoded form.
func (r Recipe) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// ParseRecipe parses and validates an encoded recipe read from outside (an
// annotation). Bad input is an error, never a panic.
func ParseRecipe(s string) (Recipe, error) {
	var r Recipe
	if len(s) > MaxRecipeSize {
		return r, fmt.Errorf("recipe: %d bytes exceeds the %d byte limit", len(s), MaxRecipeSize)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Recipe{}, fmt.Errorf("recipe: not a JSON recipe: %w", err)
	}
	if dec.More() {
		return Recipe{}, errors.New("recipe: trailing data")
	}
	if err := r.check(); err != nil {
		return Recipe{}, fmt.Errorf("recipe: %w", err)
	}
	return r, nil
}

func (r Recipe) check() error {
	switch r.Format {
	case FormatNone:
		if r != (Recipe{Format: FormatNone}) {
			return errors.New("format none takes no other field")
		}
		return nil
	case FormatGzip:
		if r.Lib != LibGo && r.Lib != LibKlauspost {
			return fmt.Errorf("gzip lib %q: want %q or %q", r.Lib, LibGo, LibKlauspost)
		}
		if r.Level != -1 && (r.Level < 1 || r.Level > 9) {
			return fmt.Errorf("gzip level %d: want -1 or 1..9", r.Level)
		}
		if r.OS < 0 || r.OS > 255 {
			return fmt.Errorf("gzip os %d: want 0..255", r.OS)
		}
		if r.MTime < 0 || r.MTime > 1<<32-1 {
			return fmt.Errorf("gzip mtime %d: want 0..2^32-1", r.MTime)
		}
		if _, err := base64.StdEncoding.DecodeString(r.Extra); err != nil {
			return fmt.Errorf("gzip extra: %w", err)
		}
		return nil
	case FormatZstd:
		if r.Lib != LibKlauspost {
			return fmt.Errorf("zstd lib %q: want %q", r.Lib, LibKlauspost)
		}
		if r.Level < int(zstd.SpeedFastest) || r.Level > int(zstd.SpeedBestCompression) {
			return fmt.Errorf("zstd level %d: want %d..%d", r.Level, zstd.SpeedFastest, zstd.SpeedBestCompression)
		}
		if r.Name != "" || r.Comment != "" || r.Extra != "" || r.MTime != 0 || r.OS != 0 {
			return errors.New("zstd takes no gzip header fields")
		}
		return nil
	}
	return fmt.Errorf("format %q: want %q, %q or %q", r.Format, FormatNone, FormatGzip, FormatZstd)
}

// FormatOf is the compression format of a layer media type, or "" for one
// this package does not handle.
func FormatOf(mt types.MediaType) string {
	switch mt {
	case types.OCILayer, types.DockerLayer:
		return FormatGzip
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return FormatNone
	case types.OCILayerZStd:
		return FormatZstd
	}
	return ""
}

// Compress returns a writer that compresses what is written to it into w
// by the recipe. Close flushes the end of the stream; it does not close w.
func (r Recipe) Compress(w io.Writer) (io.WriteCloser, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	switch r.Format {
	case FormatNone:
		return nopCloser{w}, nil
	case FormatGzip:
		// A nil extra field writes none; an empty one an empty FEXTRA.
		var extra []byte
		if r.Extra != "" {
			extra, _ = base64.StdEncoding.DecodeString(r.Extra)
		}
		var mtime time.Time
		if r.MTime != 0 {
			mtime = time.Unix(r.MTime, 0)
		}
		if r.Lib == LibGo {
			gw, err := stdgzip.NewWriterLevel(w, r.Level)
			if err != nil {
				return nil, err
			}
			gw.Header = stdgzip.Header{Name: r.Name, Comment: r.Comment, Extra: extra, ModTime: mtime, OS: byte(r.OS)}
			return gw, nil
		}
		gw, err := kgzip.NewWriterLevel(w, r.Level)
		if err != nil {
			return nil, err
		}
		gw.Header = kgzip.Header{Name: r.Name, Comment: r.Comment, Extra: extra, ModTime: mtime, OS: byte(r.OS)}
		return gw, nil
	default: // FormatZstd
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevel(r.Level)), zstd.WithEncoderConcurrency(1))
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Decompress returns a reader of the uncompressed content of a layer in
// format (FormatOf) read from r.
func Decompress(format string, r io.Reader) (io.ReadCloser, error) {
	switch format {
	case FormatNone:
		return io.NopCloser(r), nil
	case FormatGzip:
		zr, err := stdgzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(false)
		return zr, nil
	case FormatZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("compression format %q not handled", format)
}

// errDiffers stops a candidate compression at the first byte that differs.
var errDiffers = errors.New("output differs")

// cmpWriter compares what is written with want, byte by byte.
type cmpWriter struct {
	want []byte
	off  int
}

func (c *cmpWriter) Write(p []byte) (int, error) {
	if len(p) > len(c.want)-c.off || !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		return 0, errDiffers
	}
	c.off += len(p)
	return len(p), nil
}

// Candidates are the recipes Detect tries for a format, most common first:
// go-containerregistry (so ko and crane) compress gzip with the standard
// library at BestSpeed and zstd with klauspost at level 1 (SpeedFastest);
// the Docker engine and many tools use the standard library's default.
func candidates(format string, h *stdgzip.Header) []Recipe {
	switch format {
	case FormatNone:
		return []Recipe{{Format: FormatNone}}
	case FormatGzip:
		base := Recipe{Format: FormatGzip, Name: h.Name, Comment: h.Comment, Extra: base64.StdEncoding.EncodeToString(h.Extra), OS: int(h.OS)}
		if !h.ModTime.IsZero() {
			base.MTime = h.ModTime.Unix()
		}
		var out []Recipe
		for _, lib := range []string{LibGo, LibKlauspost} {
			for _, lvl := range []int{1, -1, 9, 2, 3, 4, 5, 7, 8} {
				r := base
				r.Lib, r.Level = lib, lvl
				out = append(out, r)
			}
		}
		return out
	case FormatZstd:
		var out []Recipe
		for lvl := zstd.SpeedFastest; lvl <= zstd.SpeedBestCompression; lvl++ {
			out = append(out, Recipe{Format: FormatZstd, Lib: LibKlauspost, Level: int(lvl)})
		}
		return out
	}
	return nil
}

// ErrNotReproducible is returned by Detect when no known recipe makes the
// layer's compressed bytes from its content: such a layer goes whole.
var ErrNotReproducible = errors.New("compressed bytes not reproducible from the content")

// Detect finds the recipe that makes compressed (a layer's blob in format,
// FormatOf) from content (its uncompressed bytes), by compressing content
// with every candidate and comparing; a candidate stops at its first byte
// that differs, so a wrong one costs little. It returns ErrNotReproducible
// when none matches.
func Detect(format string, compressed, content []byte) (Recipe, error) {
	var h stdgzip.Header
	switch format {
	case FormatGzip:
		zr, err := stdgzip.NewReader(bytes.NewReader(compressed))
		if err != nil {
			return Recipe{}, fmt.Errorf("gzip: %w", err)
		}
		h = zr.Header
	case FormatNone, FormatZstd:
	default:
		return Recipe{}, fmt.Errorf("compression format %q not handled", format)
	}
	for _, r := range candidates(format, &h) {
		if r.check() != nil {
			continue
		}
		if Reproduces(r, compressed, content) {
			return r, nil
		}
	}
	return Recipe{}, ErrNotReproducible
}

// Reproduces reports whether recipe r makes exactly compressed from content.
func Reproduces(r Recipe, compressed, content []byte) bool {
	c := &cmpWriter{want: compressed}
	w, err := r.Compress(c)
	if err != nil {
		return false
	}
	if _, err := w.Write(content); err != nil {
		return false
	}
	if err := w.Close(); err != nil {
		return false
	}
	return c.off == len(compressed)
}
