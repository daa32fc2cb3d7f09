// Package elfgen writes small ELF files for tests: a 64-bit little-endian
// header, the sections given, a section name string table and the section
// header table (ELF gABI, "Sections"). Offsets and sizes of a section may
// be forced to craft malformed files.
package elfgen

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
)

// Section is one section to write.
type Section struct {
	Name  string
	Type  elf.SectionType // elf.SHT_PROGBITS when 0
	Flags elf.SectionFlag
	Data  []byte
	// Offset and Size, when not 0, replace the section header's
	// sh_offset and sh_size (the data is still written where it falls).
	Offset, Size uint64
}

// Compressed is a section's data as Go's linker writes a compressed DWARF
// section: an Elf64_Chdr (ELFCOMPRESS_ZLIB, size of raw, alignment 1) and
// raw compressed by compress/zlib at level. Use it with
// Flags elf.SHF_COMPRESSED.
func Compressed(raw []byte, level int) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, elf.Chdr64{Type: uint32(elf.COMPRESS_ZLIB), Size: uint64(len(raw)), Addralign: 1})
	zw, _ := zlib.NewWriterLevel(&b, level)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	return b.Bytes()
}

// ELF64 returns an x86-64 executable with no program headers holding
// sections (after the null section, before ".shstrtab").
func ELF64(sections []Section) []byte {
	strtab := []byte{0}
	names := make([]uint32, len(sections)+1)
	for i, s := range sections {
		names[i] = uint32(len(strtab))
		strtab = append(append(strtab, s.Name...), 0)
	}
	names[len(sections)] = uint32(len(strtab))
	strtab = append(append(strtab, ".shstrtab"...), 0)
	all := append(append([]Section{}, sections...), Section{Name: ".shstrtab", Type: elf.SHT_STRTAB, Data: strtab})

	body := make([]byte, 64)
	offs := make([]uint64, len(all))
	for i, s := range all {
		offs[i] = uint64(len(body))
		body = append(body, s.Data...)
	}
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	shoff := uint64(len(body))
	le := binary.LittleEndian
	sh := make([]byte, 64) // the null section
	for i, s := range all {
		typ := s.Type
		if typ == 0 {
			typ = elf.SHT_PROGBITS
		}
		off, size := offs[i], uint64(len(s.Data))
		if s.Offset != 0 {
			off = s.Offset
		}
		if s.Size != 0 {
			size = s.Size
		}
		h := make([]byte, 64)
		le.PutUint32(h[0:], names[i])
		le.PutUint32(h[4:], uint32(typ))
		le.PutUint64(h[8:], uint64(s.Flags))
		le.PutUint64(h[24:], off)
		le.PutUint64(h[32:], size)
		le.PutUint64(h[48:], 1)
		sh = append(sh, h...)
	}
	body = append(body, sh...)
	copy(body, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le.PutUint16(body[16:], uint16(elf.ET_EXEC))
	le.PutUint16(body[18:], uint16(elf.EM_X86_64))
	le.PutUint32(body[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(body[40:], shoff)
	le.PutUint16(body[52:], 64) // e_ehsize
	le.PutUint16(body[58:], 64) // e_shentsize
	le.PutUint16(body[60:], uint16(len(all)+1))
	le.PutUint16(body[62:], uint16(len(all))) // .shstrtab, last
	return body
}
