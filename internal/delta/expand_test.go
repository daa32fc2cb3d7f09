package delta

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"errors"
	"testing"

	kzlib "github.com/klauspost/compress/zlib"

	"github.com/ballast-dev/ballast/internal/testutil/elfgen"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
)

// dwarfish is section content like DWARF: records with addresses that a
// change moves.
func dwarfish(n int, shift int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = binary.LittleEndian.AppendUint64(b, uint64(0x401000+i*48+shift))
		b = append(b, []byte("main.handler\x00runtime.mallocgc\x00")[i%20:]...)
	}
	return b[:n]
}

func elfTar(name string, secs []elfgen.Section) []byte {
	return layergen.Tar([]layergen.File{{Name: "README", Data: []byte("hello\n"), Mode: 0o644},
		{Name: name, Data: elfgen.ELF64(secs), Mode: 0o755}})
}

func applyBytes(t *testing.T, base, patch []byte, size int) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Apply(base, bytes.NewReader(patch), int64(size), &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// A Go binary with Go's default zlib-compressed DWARF, rebuilt after a
// one-line change: format 2 expands its sections, the patch round-trips
// exactly and is far smaller than format 1's.
func TestExpandGoDWARF(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go service twice")
	}
	up := layergen.GoService(t, false)
	tx, xt := findRegions(up.New, true)
	if len(tx) == 0 {
		t.Fatal("no compressed section of the Go binary is reproduced by compress/zlib")
	}
	t.Logf("%d streams expanded: %d to %d bytes", len(tx), len(up.New), len(xt))
	p2, v, err := Create(up.Old, up.New)
	if err != nil || v != 2 {
		t.Fatalf("format %d: %v", v, err)
	}
	p1, v1, _, err := create(up.Old, up.New, false)
	if err != nil || v1 != 1 {
		t.Fatal(err)
	}
	t.Logf("patch: format 2 %d bytes, format 1 %d bytes", len(p2), len(p1))
	if len(p2)*3 > len(p1) {
		t.Errorf("format 2 patch %d bytes, not a third of format 1's %d", len(p2), len(p1))
	}
	if got := applyBytes(t, up.Old, p2, len(up.New)); !bytes.Equal(got, up.New) {
		t.Fatal("format 2 patch made other bytes")
	}
	// A format 2 patch declared as format 1 is refused, not misapplied.
	err = apply(up.Old, bytes.NewReader(p2), int64(len(up.New)), &bytes.Buffer{}, 1)
	if !errors.Is(err, ErrBadPatch) {
		t.Fatalf("format 2 patch applied as format 1: %v", err)
	}
}

// Only streams compress/zlib makes again byte for byte are expanded: one
// from another compressor stays as it is, and the patch still round-trips.
func TestExpandOnlyReproducible(t *testing.T) {
	var other bytes.Buffer
	_ = binary.Write(&other, binary.LittleEndian, elf.Chdr64{Type: uint32(elf.COMPRESS_ZLIB), Size: 40000, Addralign: 1})
	kw, _ := kzlib.NewWriterLevel(&other, 5)
	_, _ = kw.Write(dwarfish(40000, 7))
	_ = kw.Close()
	mk := func(shift int) []byte {
		return elfTar("bin/app", []elfgen.Section{
			{Name: ".text", Data: dwarfish(20000, shift)},
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: elfgen.Compressed(dwarfish(60000, shift), zlib.BestSpeed)},
			{Name: ".debug_line", Flags: elf.SHF_COMPRESSED, Data: elfgen.Compressed(dwarfish(30000, shift*3), zlib.DefaultCompression)},
			{Name: ".debug_str", Flags: elf.SHF_COMPRESSED, Data: other.Bytes()},
		})
	}
	old, nw := mk(0), mk(16)
	tx, _ := findRegions(nw, true)
	if len(tx) != 2 || tx[0].level != zlib.BestSpeed || tx[1].level != zlib.DefaultCompression {
		t.Fatalf("regions %+v: want the two compress/zlib streams", tx)
	}
	if bx, _ := findRegions(old, false); len(bx) != 3 {
		t.Fatalf("base regions %+v: want all three (decompression only)", bx)
	}
	p, v, err := Create(old, nw)
	if err != nil || v != 2 {
		t.Fatalf("format %d: %v", v, err)
	}
	if got := applyBytes(t, old, p, len(nw)); !bytes.Equal(got, nw) {
		t.Fatal("patch made other bytes")
	}
	p1, _, _, _ := create(old, nw, false)
	t.Logf("patch: format 2 %d bytes, format 1 %d bytes, target %d", len(p), len(p1), len(nw))
}

// Streams that do not check out stay compressed: a declared size smaller
// than what the stream makes (a decompression bomb's header), larger, a
// stream with bytes after its end, a corrupt stream.
func TestExpandRefusesBadStreams(t *testing.T) {
	bomb := elfgen.Compressed(make([]byte, 8<<20), zlib.BestSpeed) // 8 MiB of zeros
	binary.LittleEndian.PutUint64(bomb[8:], 1000)                  // declares 1000 bytes
	short := elfgen.Compressed(dwarfish(5000, 0), 1)
	binary.LittleEndian.PutUint64(short[8:], 6000)
	trailing := append(elfgen.Compressed(dwarfish(5000, 0), 1), 1, 2, 3)
	corrupt := elfgen.Compressed(dwarfish(5000, 0), 1)
	corrupt[len(corrupt)/2] ^= 0xff
	for name, d := range map[string][]byte{"bomb": bomb, "short": short, "trailing": trailing, "corrupt": corrupt} {
		t.Run(name, func(t *testing.T) {
			c := elfTar("bin/app", []elfgen.Section{{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: d}})
			for _, exact := range []bool{true, false} {
				if rs, x := findRegions(c, exact); len(rs) != 0 || !bytes.Equal(x, c) {
					t.Fatalf("exact=%v: regions %+v", exact, rs)
				}
			}
		})
	}
}

// A file that merely starts like ELF, or an ELF file with malformed
// headers, is left as it is.
func TestExpandMalformedELF(t *testing.T) {
	good := elfgen.Compressed(dwarfish(5000, 0), 1)
	for name, f := range map[string][]byte{
		"magic only": append([]byte("\x7fELF"), make([]byte, 200)...),
		"offset beyond": elfgen.ELF64([]elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good, Offset: 1 << 40}}),
		"overlapping": elfgen.ELF64([]elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good},
			{Name: ".debug_line", Flags: elf.SHF_COMPRESSED, Data: good, Offset: 64}}),
	} {
		c := layergen.Tar([]layergen.File{{Name: "x", Data: f, Mode: 0o755}})
		if rs, _ := findRegions(c, true); len(rs) != 0 {
			t.Errorf("%s: regions %+v", name, rs)
		}
	}
}

func TestExpansionSectionRoundTrip(t *testing.T) {
	bx := []region{{off: 100, clen: 50, rlen: 400}, {off: 1000, clen: 10, rlen: 20}}
	tx := []region{{off: 200, clen: 60, rlen: 500, level: 1}, {off: 900, clen: 30, rlen: 31, level: -1}}
	b := encodeExpansion(bx, tx)
	gb, gt, bs, ts, err := decodeExpansion(b, 2000, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if len(gb) != 2 || gb[0] != bx[0] || gb[1] != bx[1] || bs != 2000+350+10 {
		t.Fatalf("base %+v %d", gb, bs)
	}
	// Target offsets are in the expanded target.
	if len(gt) != 2 || gt[0].off != 200 || gt[1].off != 900+440 || gt[1].level != -1 || ts != 3000+440+1 {
		t.Fatalf("target %+v %d", gt, ts)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 1, 1, 1}, append(b, 0)} {
		if _, _, _, _, err := decodeExpansion(bad, 2000, 3000); !errors.Is(err, errExpansion) {
			t.Errorf("%x: %v", bad, err)
		}
	}
	if _, _, _, _, err := decodeExpansion(b, 1000, 3000); err == nil {
		t.Error("a base region beyond the base was accepted")
	}
	if _, _, _, _, err := decodeExpansion(encodeExpansion(nil, []region{{off: 0, clen: 1, rlen: MaxContent, level: 1}}), 10, 10); err == nil {
		t.Error("an expanded target above MaxContent was accepted")
	}
}

// FuzzDecodeExpansion feeds arbitrary expansion sections: an error or
// regions in order inside their contents; never a panic.
func FuzzDecodeExpansion(f *testing.F) {
	f.Add(encodeExpansion([]region{{off: 100, clen: 50, rlen: 400}}, []region{{off: 20, clen: 6, rlen: 50, level: 1}}), int64(1000), int64(1000))
	f.Add([]byte{0, 0}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, baseSize, targetSize int64) {
		if baseSize < 0 || targetSize < 0 || baseSize > MaxContent || targetSize > MaxContent {
			return
		}
		bx, tx, bs, ts, err := decodeExpansion(b, baseSize, targetSize)
		if err != nil {
			return
		}
		end := int64(0)
		for _, r := range bx {
			if r.off < end || r.off+r.clen > baseSize {
				t.Fatalf("base region %+v out of place", r)
			}
			end = r.off + r.clen
		}
		end = 0
		for _, r := range tx {
			if r.off < end || r.off+r.rlen > ts {
				t.Fatalf("target region %+v out of place (%d)", r, ts)
			}
			end = r.off + r.rlen
		}
		if bs > MaxContent || ts > MaxContent || bs < 0 || ts < 0 {
			t.Fatalf("expanded sizes %d %d", bs, ts)
		}
	})
}

// FuzzApplyV2 feeds arbitrary patches against a base with compressed ELF
// sections: refused, or exactly the declared size; never a panic or
// unbounded output.
func FuzzApplyV2(f *testing.F) {
	mk := func(shift int) []byte {
		return elfTar("bin/app", []elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: elfgen.Compressed(dwarfish(30000, shift), 1)}})
	}
	old, nw := mk(0), mk(8)
	good, v, err := Create(old, nw)
	if err != nil || v != 2 {
		f.Fatalf("format %d: %v", v, err)
	}
	f.Add(good, int64(len(nw)))
	f.Add(append([]byte("BDP2"), 0), int64(10))
	f.Fuzz(func(t *testing.T, patch []byte, size int64) {
		if size < 0 || size > 1<<20 {
			return
		}
		var out bytes.Buffer
		err := Apply(old, bytes.NewReader(patch), size, &out)
		if err == nil && int64(out.Len()) != size {
			t.Fatalf("accepted with %d bytes for %d", out.Len(), size)
		}
		if err != nil && !errors.Is(err, ErrBadPatch) {
			t.Fatalf("error without ErrBadPatch: %v", err)
		}
	})
}
