package gitdeps

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrBadGitmodules marks a .gitmodules that is refused as a whole: nothing
// of a revision with such a file is mirrored or bundled.
var ErrBadGitmodules = errors.New("bad .gitmodules")

// Submodule is one entry of .gitmodules ([submodule "<name>"]).
type Submodule struct {
	Name string // the section's subsection name
	Path string // where it sits in the superproject's tree, slash-separated
	URL  string // as written: absolute, scp-like or relative ("../lib.git")
}

// MaxGitmodulesSize bounds the bytes of a .gitmodules blob that is read:
// maxSubmodules entries of a few hundred bytes each fit many times over.
const MaxGitmodulesSize = 1 << 20

// maxSubmodules bounds the entries of one .gitmodules.
const maxSubmodules = 1000

// ParseConfigList reads the output of `git config -z --list` run on a
// .gitmodules file (`--file F` or `--blob <rev>:.gitmodules`): entries
// "<key>\n<value>\0", keys lowercased by git except the subsection. Git
// itself parses the file, as Argo CD's git does; this reads git's answer
// and validates every submodule (see Submodule.Validate). Entries without
// a path or url are skipped, as git skips them; any refused entry refuses
// the whole file. The result is sorted by path.
func ParseConfigList(z []byte) ([]Submodule, error) {
	byName := map[string]*Submodule{}
	var order []string
	for len(z) > 0 {
		i := bytes.IndexByte(z, 0)
		if i < 0 {
			return nil, fmt.Errorf("%w: git config output not NUL-terminated", ErrBadGitmodules)
		}
		entry := z[:i]
		z = z[i+1:]
		key, value, _ := bytes.Cut(entry, []byte{'\n'})
		k := string(key)
		rest, ok := strings.CutPrefix(k, "submodule.")
		if !ok {
			continue
		}
		dot := strings.LastIndexByte(rest, '.')
		if dot <= 0 {
			continue
		}
		name, field := rest[:dot], rest[dot+1:]
		if field != "path" && field != "url" {
			continue
		}
		s := byName[name]
		if s == nil {
			if len(byName) >= maxSubmodules {
				return nil, fmt.Errorf("%w: more than %d submodules", ErrBadGitmodules, maxSubmodules)
			}
			s = &Submodule{Name: name}
			byName[name] = s
			order = append(order, name)
		}
		// The last value wins, as with git config --get.
		if field == "path" {
			s.Path = string(value)
		} else {
			s.URL = string(value)
		}
	}
	var out []Submodule
	paths := map[string]string{}
	for _, name := range order {
		s := byName[name]
		if s.Path == "" || s.URL == "" {
			continue
		}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if other, dup := paths[s.Path]; dup {
			return nil, fmt.Errorf("%w: submodules %q and %q share path %q", ErrBadGitmodules, cut(other), cut(name), cut(s.Path))
		}
		paths[s.Path] = name
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Validate refuses what git refuses or should: names and paths with ".."
// segments or that start with "-" or "/", ".git" as a path segment, control
// characters; URLs that are option-like, local, of another transport, or
// (relative ones) climb out of their host. Relative URLs are checked
// against a placeholder superproject on a host with a long path, so only
// their shape is judged here; ResolveSubmoduleURL judges them for real.
func (s Submodule) Validate() error {
	bad := func(what, v, why string) error {
		return fmt.Errorf("%w: submodule %q: %s %q %s", ErrBadGitmodules, cut(s.Name), what, cut(v), why)
	}
	if err := checkRelPath(s.Name); err != nil {
		return bad("name", s.Name, err.Error())
	}
	if err := checkRelPath(s.Path); err != nil {
		return bad("path", s.Path, err.Error())
	}
	if IsRelative(s.URL) {
		if strings.ContainsFunc(s.URL, func(r rune) bool { return r <= 0x20 || r == 0x7f || r == '\\' }) {
			return bad("url", s.URL, "has a space, backslash or control character")
		}
		return nil
	}
	if _, err := Normalize(s.URL); err != nil {
		return fmt.Errorf("%w: submodule %q: %w", ErrBadGitmodules, cut(s.Name), err)
	}
	return nil
}

// CheckPath accepts a clean relative slash path inside a tree: no ".."
// or "." segments, no ".git" segment, not absolute, not option-like, no
// control characters, backslashes or colons. The error says what is wrong.
func CheckPath(p string) error { return checkRelPath(p) }

// checkRelPath accepts a clean relative slash path inside the tree.
func checkRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case len(p) > 4096:
		return errors.New("is too long")
	case strings.HasPrefix(p, "-"):
		return errors.New("looks like a command-line option")
	case strings.HasPrefix(p, "/"):
		return errors.New("is absolute")
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r == ':' }):
		return errors.New("has a control character, backslash or colon")
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		switch {
		case seg == "" || seg == ".":
			return errors.New("has an empty or \".\" segment")
		case seg == "..":
			return errors.New("escapes the tree (\"..\")")
		case strings.EqualFold(strings.TrimRight(seg, ". "), ".git"):
			return errors.New("has a \".git\" segment")
		}
	}
	return nil
}
