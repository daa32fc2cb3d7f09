package gitmirror

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Ref is one branch or tag of a mirrored repository.
type Ref struct {
	Name   string `json:"name"`             // full name, e.g. "refs/heads/main"
	Object string `json:"object"`           // what the ref points at (a tag object for annotated tags)
	Commit string `json:"commit,omitempty"` // the commit it resolves to, when it resolves to one
}

// refKeepPrefix holds old tips that an upstream force-push or branch deletion
// would otherwise make unreachable. It is hidden from clients
// (uploadpack.hideRefs) and, being a ref, protects its history from gc.
const refKeepPrefix = "refs/ballast/keep/"

// refSpecs are the only refs mirrored: branches and tags. Not --mirror, which
// would also copy refs/pull/*, refs/changes/* and the like.
var refSpecs = []string{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}

// isMirroredRef reports whether name falls under refSpecs.
func isMirroredRef(name string) bool {
	return strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/")
}

// isHex reports whether s is a full object name (SHA-1 or SHA-256), lowercase.
func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// remoteListing is what ls-remote reported.
type remoteListing struct {
	refs map[string]string // mirrored refs → object
	head string            // symref target of HEAD, "" if not reported
}

// parseLsRemote reads `git ls-remote --symref` output: "<oid>\t<ref>" lines,
// "ref: <target>\tHEAD" for symrefs, "^{}" lines for peeled tags (skipped).
func parseLsRemote(out []byte) (remoteListing, error) {
	l := remoteListing{refs: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		left, name, ok := strings.Cut(line, "\t")
		if !ok {
			return l, fmt.Errorf("ls-remote: malformed line %q", trim(line))
		}
		if target, isSym := strings.CutPrefix(left, "ref: "); isSym {
			if name == "HEAD" {
				l.head = target
			}
			continue
		}
		if !isHex(left) {
			return l, fmt.Errorf("ls-remote: bad object name in %q", trim(line))
		}
		if strings.HasSuffix(name, "^{}") || !isMirroredRef(name) {
			continue
		}
		l.refs[name] = left
	}
	return l, sc.Err()
}

// parseForEachRef reads "%(objectname) %(*objectname) %(objecttype) %(refname)"
// lines into refs sorted by name.
func parseForEachRef(out []byte) ([]Ref, error) {
	var refs []Ref
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 || !isHex(f[0]) {
			return nil, fmt.Errorf("for-each-ref: malformed line %q", trim(line))
		}
		r := Ref{Name: f[3], Object: f[0]}
		switch {
		case f[2] == "commit":
			r.Commit = f[0]
		case f[2] == "tag" && isHex(f[1]):
			// %(*objectname) peels one level; a tag of a tag is rare and
			// not resolved further here.
			r.Commit = f[1]
		}
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	return refs, nil
}

const forEachRefFormat = "--format=%(objectname) %(*objectname) %(objecttype) %(refname)"

func refMap(refs []Ref) map[string]string {
	m := make(map[string]string, len(refs))
	for _, r := range refs {
		m[r.Name] = r.Object
	}
	return m
}

func sameRefs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func branchNames(refs map[string]string) string {
	var names []string
	for k := range refs {
		if strings.HasPrefix(k, "refs/heads/") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}

// trim bounds outside text quoted in an error message (120 bytes, cut on a
// rune boundary).
func trim(s string) string { return cutText(s, 120) }

// chooseHead is the upstream's HEAD target, or, when the upstream did not
// say (old servers, detached HEAD), main, master or the first branch, so
// that clones of the mirror check something out.
func chooseHead(l remoteListing) string {
	if l.head != "" {
		return l.head
	}
	for _, b := range []string{"refs/heads/main", "refs/heads/master"} {
		if _, ok := l.refs[b]; ok {
			return b
		}
	}
	if names := branchNames(l.refs); names != "" {
		first, _, _ := strings.Cut(names, "\n")
		return first
	}
	return "refs/heads/main"
}
