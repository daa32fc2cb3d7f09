package delta

import (
	"archive/tar"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/ballast-dev/ballast/internal/delta/elfz"
)

// A Go binary linked with Go's default flags carries its DWARF sections
// zlib-compressed (elfz): after a one-line change they differ throughout,
// and neither alignment nor zstd finds what is common. Patch format 2
// therefore works on an expanded view of both contents, where each such
// zlib stream is replaced by the bytes it decompresses to:
//
//   - the base's streams are only decompressed: the edge holds the base,
//     and decompression is the same everywhere;
//   - the target's streams are expanded only where compress/zlib at one
//     level makes them again byte for byte (checked when the patch is
//     made); the edge compresses them again as the patch streams out. A
//     stream no level reproduces (another toolchain's zlib) stays as it is.
//
// The edge parses no ELF: the patch lists the streams (an expansion
// section), checked against the contents' sizes before anything is read.

// region is one zlib stream of a content that the expanded view replaces
// by its decompressed bytes.
type region struct {
	off   int64 // the stream's first byte in the content
	clen  int64 // the stream's length, bytes
	rlen  int64 // the bytes it decompresses to
	level int   // target streams: the compress/zlib level that makes it
}

// growth is what regions add to a content's size when expanded.
func growth(rs []region) int64 {
	var g int64
	for _, r := range rs {
		g += r.rlen - r.clen
	}
	return g
}

// zlibLevels are the compress/zlib levels tried on a target stream, Go's
// linker's first (zlib.BestSpeed).
var zlibLevels = []int{zlib.BestSpeed, zlib.DefaultCompression, zlib.BestCompression, 2, 3, 4, 5, 7, 8}

// minELF is the smallest file looked into for an ELF's compressed
// sections, in bytes.
const minELF = 64

// findRegions finds the zlib streams of the compressed sections of the
// ELF files (by content: the ELF magic) among the regular files of the tar
// content, decompresses each, and returns those that decompress to their
// declared size from exactly their bytes (with exact, also those some
// compress/zlib level makes byte for byte) and the content expanded by
// them. The expanded content stays within MaxContent: streams past that
// stay compressed. A file or stream that does not check out is left as it
// is; content that is not a tar has no regions.
func findRegions(content []byte, exact bool) ([]region, []byte) {
	var rs []region
	var raws [][]byte
	budget := int64(MaxContent - len(content))
	cr := &countReader{r: bytes.NewReader(content)}
	tr := tar.NewReader(cr)
	for budget > 0 {
		h, err := tr.Next()
		if err != nil {
			break
		}
		off := cr.n
		if h.Typeflag != tar.TypeReg || h.Size < minELF || off+h.Size > int64(len(content)) {
			continue
		}
		file := content[off : off+h.Size]
		if !elfz.IsELF(file) {
			continue
		}
		streams, err := elfz.Streams(file, budget)
		if err != nil {
			continue
		}
		for _, s := range streams {
			if s.Size <= s.Len || s.Size-s.Len > budget {
				continue // expanding would not grow it, or past the bound
			}
			stream := file[s.Off : s.Off+s.Len]
			raw, err := inflate(stream, s.Size)
			if err != nil {
				continue
			}
			r := region{off: off + s.Off, clen: s.Len, rlen: s.Size, level: -2}
			if exact {
				for _, lvl := range zlibLevels {
					if deflates(raw, lvl, stream) {
						r.level = lvl
						break
					}
				}
				if r.level == -2 {
					continue
				}
			}
			budget -= r.rlen - r.clen
			rs = append(rs, r)
			raws = append(raws, raw)
		}
	}
	if len(rs) == 0 {
		return nil, content
	}
	out := make([]byte, 0, int64(len(content))+growth(rs))
	prev := int64(0)
	for i, r := range rs {
		out = append(out, content[prev:r.off]...)
		out = append(out, raws[i]...)
		prev = r.off + r.clen
	}
	return rs, append(out, content[prev:]...)
}

// errInflate is wrapped when a zlib stream does not decompress to its
// declared size from exactly its bytes.
var errInflate = errors.New("zlib stream")

// inflate decompresses the zlib stream, which must make exactly size
// bytes (never more are read: a stream that would expand further is
// refused) and end, checksum checked, at its last byte.
func inflate(stream []byte, size int64) ([]byte, error) {
	br := bytes.NewReader(stream)
	zr, err := zlib.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInflate, err)
	}
	defer zr.Close()
	// Allocate as the bytes arrive, not what the header claims.
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(zr, size+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInflate, err)
	}
	if n != size {
		return nil, fmt.Errorf("%w: makes %d bytes or more, declared %d", errInflate, n, size)
	}
	// The stream must end here: its end and checksum read, no byte left.
	if k, err := zr.Read(make([]byte, 1)); k != 0 || err != io.EOF {
		return nil, fmt.Errorf("%w: more than the declared %d bytes", errInflate, size)
	}
	if br.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after its end", errInflate, br.Len())
	}
	return buf.Bytes(), nil
}

// deflates reports whether compress/zlib at level makes exactly want from
// raw; it stops at the first byte that differs.
func deflates(raw []byte, level int, want []byte) bool {
	c := &cmpWriter{want: want}
	zw, err := zlib.NewWriterLevel(c, level)
	if err != nil {
		return false
	}
	if _, err := zw.Write(raw); err != nil {
		return false
	}
	return zw.Close() == nil && c.off == len(want)
}

// mapFiles moves the file offsets of a content (tarFiles) to its expanded
// view: each region lies inside one file.
func mapFiles(files map[string][2]int64, rs []region) map[string][2]int64 {
	if len(rs) == 0 {
		return files
	}
	// shift(x): growth of the regions that end at or before x.
	shift := func(x int64) int64 {
		var g int64
		for _, r := range rs {
			if r.off+r.clen > x {
				break
			}
			g += r.rlen - r.clen
		}
		return g
	}
	out := make(map[string][2]int64, len(files))
	for name, f := range files {
		start := f[0] + shift(f[0])
		out[name] = [2]int64{start, f[0] + f[1] + shift(f[0]+f[1]) - start}
	}
	return out
}

// Limits of the expansion section of a patch read from outside.
const maxRegions = 1 << 16

// encodeExpansion is the expansion section of a format 2 patch: uvarint
// count of base regions, per region uvarints gap (from the previous
// region's end, in the base content), stream length, expanded length;
// then uvarint count of target regions, per region uvarints gap (from the
// previous region's end, in the expanded target), expanded length, stream
// length and zlib level + 2.
func encodeExpansion(base, target []region) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(base)))
	prev := int64(0)
	for _, r := range base {
		for _, v := range []int64{r.off - prev, r.clen, r.rlen} {
			b = binary.AppendUvarint(b, uint64(v))
		}
		prev = r.off + r.clen
	}
	b = binary.AppendUvarint(b, uint64(len(target)))
	prev = 0
	var g int64 // growth so far: expanded offset = off + g
	for _, r := range target {
		for _, v := range []int64{r.off + g - prev, r.rlen, r.clen, int64(r.level + 2)} {
			b = binary.AppendUvarint(b, uint64(v))
		}
		g += r.rlen - r.clen
		prev = r.off + g + r.clen
	}
	return b
}

var errExpansion = errors.New("expansion section")

// decodeExpansion parses the expansion section for a base of baseSize and
// a target of targetSize bytes. It returns the base regions (offsets in
// the base), the target regions (offsets in the expanded target) and the
// sizes of both expanded contents. Regions are in order, not
// overlapping, inside their content; expanded sizes at most MaxContent.
func decodeExpansion(b []byte, baseSize, targetSize int64) (base, target []region, baseX, targetX int64, err error) {
	r := bytes.NewReader(b)
	u := func() (int64, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil || v > MaxContent {
			return 0, fmt.Errorf("%w: bad number", errExpansion)
		}
		return int64(v), nil
	}
	list := func(n int, fields int) ([][]int64, error) {
		var out [][]int64
		for range n {
			f := make([]int64, fields)
			for i := range f {
				v, err := u()
				if err != nil {
					return nil, err
				}
				f[i] = v
			}
			out = append(out, f)
		}
		return out, nil
	}
	n, err := u()
	if err != nil {
		return nil, nil, 0, 0, err
	}
	if n > maxRegions {
		return nil, nil, 0, 0, fmt.Errorf("%w: %d base regions, more than %d", errExpansion, n, maxRegions)
	}
	bl, err := list(int(n), 3)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	baseX = baseSize
	end := int64(0)
	for _, f := range bl {
		reg := region{off: end + f[0], clen: f[1], rlen: f[2]}
		if reg.clen < 1 || reg.rlen < 1 || reg.off+reg.clen > baseSize {
			return nil, nil, 0, 0, fmt.Errorf("%w: base region out of range", errExpansion)
		}
		baseX += reg.rlen - reg.clen
		if baseX > MaxContent {
			return nil, nil, 0, 0, fmt.Errorf("%w: expanded base above %d bytes", errExpansion, MaxContent)
		}
		end = reg.off + reg.clen
		base = append(base, reg)
	}
	if n, err = u(); err != nil {
		return nil, nil, 0, 0, err
	}
	if n > maxRegions {
		return nil, nil, 0, 0, fmt.Errorf("%w: %d target regions, more than %d", errExpansion, n, maxRegions)
	}
	tl, err := list(int(n), 4)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	targetX = targetSize
	end = 0
	for _, f := range tl {
		reg := region{off: end + f[0], rlen: f[1], clen: f[2], level: int(f[3]) - 2}
		if reg.clen < 1 || reg.rlen < 1 || reg.level < zlib.HuffmanOnly || reg.level > zlib.BestCompression {
			return nil, nil, 0, 0, fmt.Errorf("%w: target region out of range", errExpansion)
		}
		targetX += reg.rlen - reg.clen
		end = reg.off + reg.rlen
		if targetX > MaxContent || targetX < 0 {
			return nil, nil, 0, 0, fmt.Errorf("%w: expanded target %d bytes, not in 0..%d", errExpansion, targetX, MaxContent)
		}
		target = append(target, reg)
	}
	if end > targetX {
		return nil, nil, 0, 0, fmt.Errorf("%w: target region beyond the expanded target", errExpansion)
	}
	if r.Len() != 0 {
		return nil, nil, 0, 0, fmt.Errorf("%w: %d trailing bytes", errExpansion, r.Len())
	}
	return base, target, baseX, targetX, nil
}

// expandBase makes the expanded view of the base from its regions (a
// decoded expansion section), size bytes.
func expandBase(base []byte, rs []region, size int64) ([]byte, error) {
	if len(rs) == 0 {
		return base, nil
	}
	out := make([]byte, 0, size)
	prev := int64(0)
	for _, r := range rs {
		raw, err := inflate(base[r.off:r.off+r.clen], r.rlen)
		if err != nil {
			return nil, fmt.Errorf("base region at %d: %w", r.off, err)
		}
		out = append(out, base[prev:r.off]...)
		out = append(out, raw...)
		prev = r.off + r.clen
	}
	return append(out, base[prev:]...), nil
}

// ZlibProbe is one zlib stream of a base's content and the compress/zlib
// level that makes it: the edge's check of its compressor before a
// format 2 patch crosses the link (ProbeBase).
type ZlibProbe struct {
	Off, Len, Size int64 // in the base's content: stream offset, length; its expanded length
	Level          int
}

// String is the probe's annotation form, "off,len,size,level".
func (p ZlibProbe) String() string {
	return fmt.Sprintf("%d,%d,%d,%d", p.Off, p.Len, p.Size, p.Level)
}

// maxProbe bounds the expanded length of a probe stream, in bytes: the
// edge decompresses and compresses it before the patch crosses.
const maxProbe = 16 << 20

// parseZlibProbe parses a probe read from outside for a base content of
// content bytes.
func parseZlibProbe(s string, content int64) (ZlibProbe, error) {
	var p ZlibProbe
	parts := strings.Split(s, ",")
	if len(s) > 100 || len(parts) != 4 {
		return p, errors.New(`want "offset,length,size,level"`)
	}
	var v [4]int64
	for i, f := range parts {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return p, fmt.Errorf("field %d: %w", i+1, err)
		}
		v[i] = n
	}
	p = ZlibProbe{Off: v[0], Len: v[1], Size: v[2], Level: int(v[3])}
	if p.Off < 0 || p.Len < 1 || p.Off > content || p.Len > content-p.Off || p.Size < 1 || p.Size > maxProbe ||
		v[3] < zlib.HuffmanOnly || v[3] > zlib.BestCompression {
		return ZlibProbe{}, fmt.Errorf("%s out of range for a %d byte content", s, content)
	}
	return p, nil
}

// findProbe picks, among the base's regions, the smallest stream that a
// compress/zlib level reproduces (levels of the target's regions first).
func findProbe(base []byte, bx, tx []region) *ZlibProbe {
	levels := []int{}
	for _, r := range tx {
		if !slices.Contains(levels, r.level) {
			levels = append(levels, r.level)
		}
	}
	for _, l := range zlibLevels {
		if !slices.Contains(levels, l) {
			levels = append(levels, l)
		}
	}
	byLen := slices.Clone(bx)
	slices.SortFunc(byLen, func(a, b region) int { return int(a.rlen - b.rlen) })
	for i, r := range byLen {
		if i == 3 || r.rlen > maxProbe {
			break
		}
		stream := base[r.off : r.off+r.clen]
		raw, err := inflate(stream, r.rlen)
		if err != nil {
			continue
		}
		for _, l := range levels {
			if deflates(raw, l, stream) {
				return &ZlibProbe{Off: r.off, Len: r.clen, Size: r.rlen, Level: l}
			}
		}
	}
	return nil
}

// probeZlib checks that compress/zlib makes the probe's stream of
// content again.
func probeZlib(p ZlibProbe, content []byte) error {
	if p.Off < 0 || p.Len < 1 || p.Off+p.Len > int64(len(content)) {
		return fmt.Errorf("zlib probe at %d: outside the %d byte content", p.Off, len(content))
	}
	stream := content[p.Off : p.Off+p.Len]
	raw, err := inflate(stream, p.Size)
	if err != nil {
		return fmt.Errorf("zlib probe at %d: %w", p.Off, err)
	}
	if !deflates(raw, p.Level, stream) {
		return fmt.Errorf("zlib probe at %d: compress/zlib level %d makes other bytes", p.Off, p.Level)
	}
	return nil
}

// packWriter turns the expanded target back into the target as it
// streams to w: the bytes of each target region (offsets in the expanded
// target) are compressed by compress/zlib at the region's level, which
// must make exactly the region's stream length.
type packWriter struct {
	w   io.Writer
	rs  []region
	pos int64 // expanded bytes written so far
	ri  int   // the region at or after pos
	zw  *zlib.Writer
	out countWriter // what zw writes, counted
	n   int64       // bytes written to w
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (pw *packWriter) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		if pw.ri == len(pw.rs) || pw.pos < pw.rs[pw.ri].off {
			n := len(p)
			if pw.ri < len(pw.rs) {
				n = int(min(int64(n), pw.rs[pw.ri].off-pw.pos))
			}
			k, err := pw.w.Write(p[:n])
			pw.n += int64(k)
			if err != nil {
				return 0, err
			}
			p, pw.pos = p[n:], pw.pos+int64(n)
			continue
		}
		r := pw.rs[pw.ri]
		if pw.zw == nil {
			pw.out = countWriter{w: pw.w}
			zw, err := zlib.NewWriterLevel(&pw.out, r.level)
			if err != nil {
				return 0, err
			}
			pw.zw = zw
		}
		n := int(min(int64(len(p)), r.off+r.rlen-pw.pos))
		if _, err := pw.zw.Write(p[:n]); err != nil {
			return 0, err
		}
		p, pw.pos = p[n:], pw.pos+int64(n)
		if pw.pos == r.off+r.rlen {
			err := pw.zw.Close()
			pw.n += pw.out.n
			pw.zw = nil
			pw.ri++
			if err != nil {
				return 0, err
			}
			if pw.out.n != r.clen {
				return 0, fmt.Errorf("%w: target region at %d compresses to %d bytes, want %d", ErrMismatch, r.off, pw.out.n, r.clen)
			}
		}
	}
	return written, nil
}
