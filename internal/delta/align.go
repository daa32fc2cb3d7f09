package delta

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A rebuilt binary differs from its old build in many places by a little:
// code after a change moves, and every address that crosses it shifts. No
// exact-match compressor (zstd's patch-from included) does well on that;
// bsdiff's insight does: align new and old, and store new minus old, which
// is mostly zeros. Create does this for each regular file of the target tar
// that the base tar has under the same name with other content (a
// transform), and leaves the rest to zstd with the base as dictionary.

// transform is one file of the target whose bytes the patch stores as
// differences against the base file of the same name.
type transform struct {
	tOff, tLen int64 // file data in the target content
	bOff, bLen int64 // file data in the base content
	segs       []seg // in order of start; the first starts at 0
}

// seg: from file byte start on, target byte i is predicted by base file
// byte i+off (0 outside the base file).
type seg struct {
	start int64
	off   int64
}

// minTransform is the smallest file worth a transform, in bytes.
const minTransform = 16 << 10

// tarFiles maps the names of the regular files of a tar to their data's
// offset and length in it. A content that is not a tar gives nil.
func tarFiles(content []byte) map[string][2]int64 {
	cr := &countReader{r: bytes.NewReader(content)}
	tr := tar.NewReader(cr)
	out := map[string][2]int64{}
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		if h.Typeflag != tar.TypeReg || h.Size < minTransform {
			continue
		}
		off := cr.n
		if off+h.Size > int64(len(content)) {
			return out
		}
		out[h.Name] = [2]int64{off, h.Size}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// planTransforms finds the files of target to store as differences, and
// returns target with their bytes replaced by the differences. bf and tf
// place the files of base and target (tarFiles, mapFiles).
func planTransforms(base, target []byte, bf, tf map[string][2]int64) ([]transform, []byte) {
	if len(bf) == 0 || len(tf) == 0 {
		return nil, target
	}
	var ts []transform
	var out []byte
	for name, t := range tf {
		b, ok := bf[name]
		if !ok {
			continue
		}
		nw := target[t[0] : t[0]+t[1]]
		old := base[b[0] : b[0]+b[1]]
		if bytes.Equal(nw, old) {
			continue
		}
		segs, diff := align(nw, old)
		zeros := bytes.Count(diff, []byte{0})
		if zeros < len(diff)/2 {
			continue // not alike enough: zstd does as well
		}
		if out == nil {
			out = append([]byte(nil), target...)
		}
		copy(out[t[0]:], diff)
		ts = append(ts, transform{tOff: t[0], tLen: t[1], bOff: b[0], bLen: b[1], segs: segs})
	}
	if out == nil {
		return nil, target
	}
	sortTransforms(ts)
	return ts, out
}

func sortTransforms(ts []transform) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].tOff < ts[j-1].tOff; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// seedLen is the length of the exact match that moves the alignment.
const seedLen = 24

// rollBase is the rolling hash's multiplier.
const rollBase = 0x100000001b3

// align returns the segments that predict nw from old and the differences
// nw - prediction, byte by byte. Memory: the differences (len(nw)) and a
// table of about 2 bytes per byte of old.
func align(nw, old []byte) ([]seg, []byte) {
	diff := make([]byte, len(nw))
	segs := []seg{{0, 0}}
	if len(old) < seedLen || len(nw) < seedLen {
		for i := range nw {
			diff[i] = nw[i] - predict(old, int64(i), 0)
		}
		return segs, diff
	}
	// Every second position of old is indexed: a table of 4 bytes per
	// 2 bytes of old (collisions keep the last).
	bits := 1
	for 1<<bits < len(old)/2 {
		bits++
	}
	mask := uint64(1)<<bits - 1
	table := make([]uint32, 1<<bits)
	var pow uint64 = 1
	for range seedLen {
		pow *= rollBase
	}
	var h uint64
	for i := range old {
		h = h*rollBase + uint64(old[i])
		if i >= seedLen {
			h -= pow * uint64(old[i-seedLen])
		}
		if p := i - seedLen + 1; p >= 0 && p%2 == 0 {
			table[(h*0x9e3779b97f4a7c15)>>(64-bits)&mask] = uint32(p + 1)
		}
	}
	off := int64(0)
	h = 0
	for i := range nw {
		// h is the hash of nw[i : i+seedLen].
		if i == 0 {
			for j := 0; j < seedLen; j++ {
				h = h*rollBase + uint64(nw[j])
			}
		} else if i+seedLen <= len(nw) {
			h = h*rollBase + uint64(nw[i+seedLen-1]) - pow*uint64(nw[i-1])
		}
		pred := predict(old, int64(i), off)
		if nw[i] != pred && i+seedLen <= len(nw) {
			if e := table[(h*0x9e3779b97f4a7c15)>>(64-bits)&mask]; e != 0 {
				p := int64(e - 1)
				if p-int64(i) != off && bytes.Equal(old[p:p+seedLen], nw[i:i+seedLen]) {
					off = p - int64(i)
					if last := &segs[len(segs)-1]; last.start == int64(i) {
						last.off = off
					} else {
						segs = append(segs, seg{int64(i), off})
					}
					pred = nw[i]
				}
			}
		}
		diff[i] = nw[i] - pred
	}
	return segs, diff
}

func predict(old []byte, i, off int64) byte {
	if j := i + off; j >= 0 && j < int64(len(old)) {
		return old[j]
	}
	return 0
}

// Limits of the transforms section of a patch read from outside.
const (
	maxTransforms = 1 << 16
	maxSegments   = 1 << 20
	maxControl    = 16 << 20
)

// encodeTransforms is the transforms section: uvarint count, then per
// transform uvarints tOff, tLen, bOff, bLen, segment count, and per segment
// uvarint start (relative to the previous start) and varint off.
func encodeTransforms(ts []transform) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(ts)))
	for _, t := range ts {
		for _, v := range []int64{t.tOff, t.tLen, t.bOff, t.bLen, int64(len(t.segs))} {
			b = binary.AppendUvarint(b, uint64(v))
		}
		prev := int64(0)
		for _, s := range t.segs {
			b = binary.AppendUvarint(b, uint64(s.start-prev))
			b = binary.AppendVarint(b, s.off)
			prev = s.start
		}
	}
	return b
}

var errControl = errors.New("transforms section")

// decodeTransforms parses the transforms section for a target of
// targetSize and a base of baseSize bytes: transforms in order, not
// overlapping, inside both contents; segments in order inside their file.
func decodeTransforms(b []byte, targetSize, baseSize int64) ([]transform, error) {
	r := bytes.NewReader(b)
	u := func() (int64, error) {
		v, err := binary.ReadUvarint(r)
		if err != nil || v > 1<<62 {
			return 0, fmt.Errorf("%w: bad number", errControl)
		}
		return int64(v), nil
	}
	n, err := u()
	if err != nil {
		return nil, err
	}
	if n > maxTransforms {
		return nil, fmt.Errorf("%w: %d transforms, more than %d", errControl, n, maxTransforms)
	}
	var ts []transform
	end := int64(0)
	segTotal := int64(0)
	for range n {
		var t transform
		var ns int64
		for _, p := range []*int64{&t.tOff, &t.tLen, &t.bOff, &t.bLen, &ns} {
			if *p, err = u(); err != nil {
				return nil, err
			}
		}
		if t.tOff < end || t.tLen > targetSize-t.tOff || t.bLen > baseSize-t.bOff || t.bOff > baseSize {
			return nil, fmt.Errorf("%w: transform out of range", errControl)
		}
		end = t.tOff + t.tLen
		if ns < 1 || segTotal+ns > maxSegments {
			return nil, fmt.Errorf("%w: %d segments", errControl, ns)
		}
		segTotal += ns
		prev := int64(0)
		for k := range ns {
			d, err := u()
			if err != nil {
				return nil, err
			}
			off, err := binary.ReadVarint(r)
			if err != nil || off < -(1<<40) || off > 1<<40 {
				return nil, fmt.Errorf("%w: bad offset", errControl)
			}
			start := prev + d
			if (k == 0 && start != 0) || (k > 0 && d == 0) || start >= max(t.tLen, 1) {
				return nil, fmt.Errorf("%w: segment out of order or range", errControl)
			}
			t.segs = append(t.segs, seg{start, off})
			prev = start
		}
		ts = append(ts, t)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errControl, r.Len())
	}
	return ts, nil
}

// undoWriter adds the base's predictions back to the transformed ranges
// of the target content as it streams to w.
type undoWriter struct {
	w    io.Writer
	base []byte
	ts   []transform
	pos  int64 // target bytes written so far
	ti   int   // the transform at or after pos
	si   int   // its segment at pos
	buf  []byte
}

func (u *undoWriter) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		for u.ti < len(u.ts) && u.pos >= u.ts[u.ti].tOff+u.ts[u.ti].tLen {
			u.ti, u.si = u.ti+1, 0
		}
		if u.ti == len(u.ts) || u.pos < u.ts[u.ti].tOff {
			n := len(p)
			if u.ti < len(u.ts) {
				n = int(min(int64(n), u.ts[u.ti].tOff-u.pos))
			}
			if _, err := u.w.Write(p[:n]); err != nil {
				return 0, err
			}
			p, u.pos = p[n:], u.pos+int64(n)
			continue
		}
		t := &u.ts[u.ti]
		n := int(min(int64(len(p)), t.tOff+t.tLen-u.pos))
		u.buf = append(u.buf[:0], p[:n]...)
		for k := range u.buf {
			i := u.pos + int64(k) - t.tOff
			for u.si+1 < len(t.segs) && t.segs[u.si+1].start <= i {
				u.si++
			}
			if j := i + t.segs[u.si].off; j >= 0 && j < t.bLen {
				u.buf[k] += u.base[t.bOff+j]
			}
		}
		if _, err := u.w.Write(u.buf); err != nil {
			return 0, err
		}
		p, u.pos = p[n:], u.pos+int64(n)
	}
	return written, nil
}
