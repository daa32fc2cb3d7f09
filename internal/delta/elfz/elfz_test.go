package elfz_test

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/ballast-dev/ballast/internal/delta/elfz"
	"github.com/ballast-dev/ballast/internal/testutil/elfgen"
)

func raw(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 / 5)
	}
	return b
}

func TestStreamsFindsCompressedSections(t *testing.T) {
	info, line := raw(5000), raw(3000)
	zdebug := append([]byte("ZLIB\x00\x00\x00\x00\x00\x00\x0b\xb8"), elfgen.Compressed(line, 1)[24:]...)
	f := elfgen.ELF64([]elfgen.Section{
		{Name: ".text", Data: raw(100)},
		{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: elfgen.Compressed(info, zlib.BestSpeed)},
		{Name: ".zdebug_line", Data: zdebug},
		{Name: ".debug_str", Data: raw(50)},
	})
	ss, err := elfz.Streams(f, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 || ss[0].Section != ".debug_info" || ss[0].Kind != elfz.KindChdr || ss[0].Size != 5000 ||
		ss[1].Section != ".zdebug_line" || ss[1].Kind != elfz.KindZdebug || ss[1].Size != 3000 {
		t.Fatalf("streams %+v", ss)
	}
	for i, want := range [][]byte{info, line} {
		zr, err := zlib.NewReader(bytes.NewReader(f[ss[i].Off : ss[i].Off+ss[i].Len]))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("stream %d does not decompress to the section: %v", i, err)
		}
	}
	// Declared sizes above the bound are left out.
	if ss, err := elfz.Streams(f, 4000); err != nil || len(ss) != 1 || ss[0].Section != ".zdebug_line" {
		t.Fatalf("bounded: %+v %v", ss, err)
	}
}

// A zstd-compressed section (ELFCOMPRESS_ZSTD) is not a zlib stream: it
// is left as it is.
func TestStreamsSkipsOtherCompression(t *testing.T) {
	d := elfgen.Compressed(raw(1000), 1)
	binary.LittleEndian.PutUint32(d, uint32(elf.COMPRESS_ZSTD))
	f := elfgen.ELF64([]elfgen.Section{{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: d}})
	if ss, err := elfz.Streams(f, 1<<20); err != nil || len(ss) != 0 {
		t.Fatalf("%+v %v", ss, err)
	}
}

func TestStreamsRefusesMalformed(t *testing.T) {
	good := elfgen.Compressed(raw(1000), 1)
	for name, f := range map[string][]byte{
		"not ELF":   []byte("#!/bin/sh\necho hello\n"),
		"truncated": elfgen.ELF64([]elfgen.Section{{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good}})[:80],
		"offset beyond the file": elfgen.ELF64([]elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good, Offset: 1 << 40}}),
		"size beyond the file": elfgen.ELF64([]elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good, Size: 1 << 62}}),
		"overlapping": elfgen.ELF64([]elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good},
			{Name: ".debug_line", Flags: elf.SHF_COMPRESSED, Data: good, Offset: 64}}),
		"shorter than its header": elfgen.ELF64([]elfgen.Section{
			{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good[:10]}}),
		"section headers beyond the file": func() []byte {
			f := elfgen.ELF64([]elfgen.Section{{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: good}})
			binary.LittleEndian.PutUint16(f[60:], 0xfff0) // e_shnum
			return f
		}(),
		"program headers beyond the file": func() []byte {
			f := elfgen.ELF64(nil)
			binary.LittleEndian.PutUint64(f[32:], 64)     // e_phoff
			binary.LittleEndian.PutUint16(f[54:], 56)     // e_phentsize
			binary.LittleEndian.PutUint16(f[56:], 0xfff0) // e_phnum
			return f
		}(),
		"unknown class": append([]byte("\x7fELF\x07\x01\x01"), make([]byte, 100)...),
	} {
		t.Run(name, func(t *testing.T) {
			ss, err := elfz.Streams(f, 1<<30)
			if !errors.Is(err, elfz.ErrFormat) {
				t.Fatalf("want ErrFormat, got %+v %v", ss, err)
			}
			t.Log(err)
		})
	}
}

// A declared size beyond any bound (a decompression bomb's header) is
// left out, never allocated.
func TestStreamsHugeDeclaredSize(t *testing.T) {
	d := elfgen.Compressed(raw(1000), 1)
	binary.LittleEndian.PutUint64(d[8:], 1<<63)
	f := elfgen.ELF64([]elfgen.Section{{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: d}})
	if ss, err := elfz.Streams(f, 1<<30); err != nil || len(ss) != 0 {
		t.Fatalf("%+v %v", ss, err)
	}
}

// FuzzStreams feeds arbitrary files: an error or streams inside the
// file, in order, not overlapping, within the bound; never a panic.
func FuzzStreams(f *testing.F) {
	f.Add(elfgen.ELF64([]elfgen.Section{
		{Name: ".debug_info", Flags: elf.SHF_COMPRESSED, Data: elfgen.Compressed(raw(3000), 1)},
		{Name: ".zdebug_line", Data: append([]byte("ZLIB\x00\x00\x00\x00\x00\x00\x00\x10"), 0x78, 0x01, 0, 0)},
	}))
	f.Add(elfgen.ELF64(nil))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := elfz.Streams(b, 1<<20)
		if err != nil {
			if !errors.Is(err, elfz.ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		end := int64(0)
		for _, s := range ss {
			if s.Off-s.Header < end || s.Len < 1 || s.Off+s.Len > int64(len(b)) || s.Size > 1<<20 || s.Size < 0 {
				t.Fatalf("stream out of place: %+v in %d bytes", s, len(b))
			}
			end = s.Off + s.Len
		}
	})
}
