// Package argoglob matches paths against Argo CD's directory include and
// exclude patterns.
package argoglob

import (
	"fmt"
	"regexp"
	"strings"
)

// Compile compiles an Argo CD directory include/exclude pattern. Argo CD
// matches these with gobwas/glob and no separators, so '*' also matches '/':
// "*.yaml" selects YAML files at any depth. Supported: '*', '**', '?',
// '[abc]', '[a-z]', '[!abc]', '{alt1,alt2}' (nestable) and '\' escapes.
func Compile(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	rest, err := globToRegexp(pattern, &b, 0)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	if rest != "" {
		return nil, fmt.Errorf("glob %q: unexpected %q", pattern, rest[:1])
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// globToRegexp translates p until its end or, inside braces (depth > 0), an
// unmatched ',' or '}', which it leaves in the returned rest.
func globToRegexp(p string, b *strings.Builder, depth int) (string, error) {
	for p != "" {
		c := p[0]
		switch c {
		case '*':
			b.WriteString(".*")
			p = strings.TrimLeft(p, "*")
			continue
		case '?':
			b.WriteString(".")
		case '\\':
			if len(p) < 2 {
				return "", fmt.Errorf("trailing escape")
			}
			b.WriteString(regexp.QuoteMeta(p[1:2]))
			p = p[2:]
			continue
		case '[':
			end := strings.IndexByte(p[1:], ']')
			if end < 0 {
				return "", fmt.Errorf("unclosed '['")
			}
			class := p[1 : 1+end]
			if class == "" || class == "!" {
				return "", fmt.Errorf("empty character class")
			}
			b.WriteString("[")
			if class[0] == '!' {
				b.WriteString("^")
				class = class[1:]
			}
			for _, r := range class {
				if r == '-' {
					b.WriteRune(r)
				} else {
					b.WriteString(regexp.QuoteMeta(string(r)))
				}
			}
			b.WriteString("]")
			p = p[2+end:]
			continue
		case '{':
			b.WriteString("(?:")
			p = p[1:]
			for {
				var err error
				p, err = globToRegexp(p, b, depth+1)
				if err != nil {
					return "", err
				}
				if p == "" {
					return "", fmt.Errorf("unclosed '{'")
				}
				if p[0] == '}' {
					p = p[1:]
					break
				}
				b.WriteString("|") // p[0] == ','
				p = p[1:]
			}
			b.WriteString(")")
			continue
		case ',', '}':
			if depth > 0 {
				return p, nil
			}
			b.WriteString(regexp.QuoteMeta(string(c)))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
		p = p[1:]
	}
	return "", nil
}
