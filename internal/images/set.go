package images

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/ballast-dev/ballast/internal/imageref"
)

// Image is one distinct, normalized reference with every place it was found.
type Image struct {
	Ref       string     `json:"image"`
	Locations []Location `json:"foundIn"`
}

// Set collects image occurrences, deduplicated by normalized reference.
// The zero value is ready to use.
type Set struct {
	m map[string]*Image
}

// Add records that ref was found at loc.
func (s *Set) Add(ref imageref.Ref, loc Location) {
	if s.m == nil {
		s.m = make(map[string]*Image)
	}
	k := ref.String()
	img, ok := s.m[k]
	if !ok {
		img = &Image{Ref: k}
		s.m[k] = img
	}
	img.Locations = append(img.Locations, loc)
}

// AddAll records every occurrence.
func (s *Set) AddAll(occ []Occurrence) {
	for _, o := range occ {
		s.Add(o.Ref, o.Location)
	}
}

// Len is the number of distinct references.
func (s *Set) Len() int { return len(s.m) }

// List returns the images sorted by reference, each with its locations in a
// stable order (file, line, kind, name, field).
func (s *Set) List() []Image {
	out := make([]Image, 0, len(s.m))
	for _, img := range s.m {
		locs := append([]Location(nil), img.Locations...)
		sort.SliceStable(locs, func(i, j int) bool {
			a, b := locs[i], locs[j]
			if a.File != b.File {
				return a.File < b.File
			}
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			if a.Name != b.Name {
				return a.Name < b.Name
			}
			return a.Field < b.Field
		})
		out = append(out, Image{Ref: img.Ref, Locations: locs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// Refs returns the distinct references, sorted.
func (s *Set) Refs() []string {
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParseList reads a plain list of image references: one per line, blank
// lines ignored, "#" starts a comment (a '#' cannot occur in a reference).
// It is for images that manifests do not show, such as those an operator
// pulls at run time. Every reference is normalized; a bad one is an error
// with the file and line.
func ParseList(file string, data []byte) ([]Occurrence, error) {
	var out []Occurrence
	sc := bufio.NewScanner(bytes.NewReader(bytes.TrimPrefix(data, utf8BOM)))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if strings.IndexFunc(text, unicode.IsSpace) >= 0 {
			return nil, &DecodeError{File: file, Line: line, Err: fmt.Errorf("%q: one image reference per line", text)}
		}
		ref, err := imageref.Parse(text)
		if err != nil {
			return nil, &DecodeError{File: file, Line: line, Err: err}
		}
		out = append(out, Occurrence{Ref: ref, Raw: text, Location: Location{File: file, Line: line}})
	}
	if err := sc.Err(); err != nil {
		return nil, &DecodeError{File: file, Line: line + 1, Err: err}
	}
	return out, nil
}
