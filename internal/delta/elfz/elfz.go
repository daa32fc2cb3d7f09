// Package elfz finds the zlib-compressed sections of an ELF file: where
// each zlib stream lies in the file and how many bytes it declares it
// expands to. Go's linker compresses a binary's DWARF sections this way by
// default (cmd/link/internal/ld compressSyms: an ELF compression header,
// Chdr32 or Chdr64 with ch_type ELFCOMPRESS_ZLIB, on a section flagged
// SHF_COMPRESSED, then a compress/zlib stream at zlib.BestSpeed); Go 1.11
// to 1.16 and older toolchains wrote ".zdebug_*" sections instead ("ZLIB",
// the size as 8 bytes big-endian, then the zlib stream). Both are found.
//
// Headers are read by the standard library's debug/elf; this package
// checks what it does not: that every stream lies inside the file, that
// streams do not overlap, and that declared sizes are within a caller's
// bound, and (before debug/elf reads them) that the header tables lie
// inside the file. Bad input is an error, never a panic. Nothing is
// decompressed here.
package elfz

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Magic starts every ELF file.
var Magic = []byte{0x7f, 'E', 'L', 'F'}

// IsELF reports whether b starts like an ELF file (its magic).
func IsELF(b []byte) bool { return bytes.HasPrefix(b, Magic) }

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("elf: malformed")

// Kinds of compressed section.
const (
	KindChdr   = "chdr"   // SHF_COMPRESSED with an ELF compression header
	KindZdebug = "zdebug" // legacy ".zdebug_*": "ZLIB" and a big-endian size
)

// Stream is one zlib stream of a compressed section.
type Stream struct {
	Section string // the section's name, e.g. ".debug_info"
	Kind    string // KindChdr or KindZdebug
	// Off and Len place the zlib stream (RFC 1950: header, deflate data,
	// Adler-32) in the file, in bytes; the section's compression header
	// is before Off.
	Off, Len int64
	// Size is the uncompressed size the header declares, in bytes.
	Size int64
	// Header is the compression header's length, before Off, in bytes.
	Header int64
}

// MaxSections bounds the section headers a file may have.
const MaxSections = 1 << 16

// Streams returns the zlib streams of the compressed sections of the ELF
// file b, in file order. Sections compressed otherwise (ELFCOMPRESS_ZSTD,
// an unknown ch_type) and streams declaring more than maxSize bytes are
// left out: their bytes stay as they are. Errors wrap ErrFormat: not an
// ELF file, headers debug/elf refuses, a compressed section that reaches
// beyond the file, compressed sections that overlap.
func Streams(b []byte, maxSize int64) ([]Stream, error) {
	if !IsELF(b) {
		return nil, fmt.Errorf("%w: no ELF magic", ErrFormat)
	}
	if err := checkTables(b); err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		// EOF: a header or a compression header beyond the file.
		return nil, fmt.Errorf("%w: reading the headers (debug/elf): %w", ErrFormat, err)
	}
	defer f.Close()
	if len(f.Sections) > MaxSections {
		return nil, fmt.Errorf("%w: %d sections, more than %d", ErrFormat, len(f.Sections), MaxSections)
	}
	size := uint64(len(b))
	var out []Stream
	for i, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.FileSize == 0 {
			continue
		}
		compressed := s.Flags&elf.SHF_COMPRESSED != 0
		zdebug := !compressed && strings.HasPrefix(s.Name, ".zdebug")
		if !compressed && !zdebug {
			continue
		}
		if s.Offset > size || s.FileSize > size-s.Offset {
			return nil, fmt.Errorf("%w: section %d (%q) at %d, %d bytes: beyond the file's %d bytes", ErrFormat, i, s.Name, s.Offset, s.FileSize, size)
		}
		data := b[s.Offset : s.Offset+s.FileSize]
		st := Stream{Section: s.Name}
		var hdr int
		switch {
		case zdebug:
			if len(data) < 12 || string(data[:4]) != "ZLIB" {
				continue // not compressed after all
			}
			st.Kind, hdr = KindZdebug, 12
			st.Size = int64(min(binary.BigEndian.Uint64(data[4:12]), 1<<62))
		case f.Class == elf.ELFCLASS64:
			if len(data) < 24 {
				return nil, fmt.Errorf("%w: section %d (%q): %d bytes, shorter than its compression header", ErrFormat, i, s.Name, len(data))
			}
			if elf.CompressionType(f.ByteOrder.Uint32(data[0:4])) != elf.COMPRESS_ZLIB {
				continue
			}
			st.Kind, hdr = KindChdr, 24
			st.Size = int64(min(f.ByteOrder.Uint64(data[8:16]), 1<<62))
		case f.Class == elf.ELFCLASS32:
			if len(data) < 12 {
				return nil, fmt.Errorf("%w: section %d (%q): %d bytes, shorter than its compression header", ErrFormat, i, s.Name, len(data))
			}
			if elf.CompressionType(f.ByteOrder.Uint32(data[0:4])) != elf.COMPRESS_ZLIB {
				continue
			}
			st.Kind, hdr = KindChdr, 12
			st.Size = int64(f.ByteOrder.Uint32(data[4:8]))
		default:
			return nil, fmt.Errorf("%w: ELF class %v", ErrFormat, f.Class)
		}
		if st.Size > maxSize || len(data) == hdr {
			continue
		}
		st.Off, st.Len, st.Header = int64(s.Offset)+int64(hdr), int64(len(data)-hdr), int64(hdr)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Off < out[j].Off })
	// Sections overlapping uncompressed ones are no concern here (their
	// bytes are not rewritten); two compressed ones would be rewritten
	// twice.
	for i := 1; i < len(out); i++ {
		if out[i].Off-out[i].Header < out[i-1].Off+out[i-1].Len {
			return nil, fmt.Errorf("%w: compressed sections %q and %q overlap", ErrFormat, out[i-1].Section, out[i].Section)
		}
	}
	return out, nil
}

// checkTables checks, before debug/elf reads them, that the program and
// section header tables the ELF header places lie inside the file (gABI
// "ELF Header"): a header claiming more would have debug/elf read (and
// allocate) up to its limits before finding the end of the file. Extended
// numbering (a count of 0 or PN_XNUM) is left to debug/elf.
func checkTables(b []byte) error {
	if len(b) < 16 {
		return fmt.Errorf("%w: %d bytes, shorter than the ELF identification", ErrFormat, len(b))
	}
	var bo binary.ByteOrder
	switch elf.Data(b[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return fmt.Errorf("%w: data encoding %d", ErrFormat, b[elf.EI_DATA])
	}
	var phoff, shoff uint64
	var at int // offset of e_phentsize
	switch elf.Class(b[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		if len(b) < 64 {
			return fmt.Errorf("%w: %d bytes, shorter than an ELF64 header", ErrFormat, len(b))
		}
		phoff, shoff, at = bo.Uint64(b[32:]), bo.Uint64(b[40:]), 54
	case elf.ELFCLASS32:
		if len(b) < 52 {
			return fmt.Errorf("%w: %d bytes, shorter than an ELF32 header", ErrFormat, len(b))
		}
		phoff, shoff, at = uint64(bo.Uint32(b[28:])), uint64(bo.Uint32(b[32:])), 42
	default:
		return fmt.Errorf("%w: ELF class %d", ErrFormat, b[elf.EI_CLASS])
	}
	phentsize, phnum := uint64(bo.Uint16(b[at:])), uint64(bo.Uint16(b[at+2:]))
	shentsize, shnum := uint64(bo.Uint16(b[at+4:])), uint64(bo.Uint16(b[at+6:]))
	size := uint64(len(b))
	if phnum != 0 && phnum != 0xffff && (phoff > size || phentsize*phnum > size-phoff) {
		return fmt.Errorf("%w: program header table (%d × %d bytes at %d) beyond the file's %d bytes", ErrFormat, phnum, phentsize, phoff, size)
	}
	if shnum != 0 && (shoff > size || shentsize*shnum > size-shoff) {
		return fmt.Errorf("%w: section header table (%d × %d bytes at %d) beyond the file's %d bytes", ErrFormat, shnum, shentsize, shoff, size)
	}
	return nil
}
