package lfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Entry is one pointer file of a revision.
type Entry struct {
	Path string `json:"path"`
	Pointer
}

// Malformed is a file of a revision that claims to be an LFS pointer
// ("version …" first line, at most MaxPointerSize bytes) but is not a valid
// one. git-lfs would check its text out as the file's content.
type Malformed struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// scanResult is what a revision's tree holds of LFS.
type scanResult struct {
	entries   []Entry
	malformed []Malformed
}

// treeEntry is one line of `git ls-tree -r -z --long`.
type treeEntry struct {
	mode, typ, object string
	size              int64
	path              string
}

// parseLsTree parses `git ls-tree -r -z --long` output:
// "<mode> SP <type> SP <object> SP+ <size> TAB <path> NUL" per entry, size
// "-" for anything that is not a blob.
func parseLsTree(out []byte) ([]treeEntry, error) {
	var es []treeEntry
	for len(out) > 0 {
		i := bytes.IndexByte(out, 0)
		if i < 0 {
			return nil, errors.New("ls-tree: entry not NUL-terminated")
		}
		rec := string(out[:i])
		out = out[i+1:]
		meta, path, ok := strings.Cut(rec, "\t")
		if !ok || path == "" {
			return nil, fmt.Errorf("ls-tree: malformed entry %q", short(rec))
		}
		f := strings.Fields(meta)
		if len(f) != 4 {
			return nil, fmt.Errorf("ls-tree: malformed entry %q", short(rec))
		}
		e := treeEntry{mode: f[0], typ: f[1], object: f[2], size: -1, path: path}
		if f[3] != "-" {
			n, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("ls-tree: bad size in %q", short(rec))
			}
			e.size = n
		}
		es = append(es, e)
	}
	return es, nil
}

// scanCommit lists the pointer files of commit in repository id: every
// regular-file blob of at most MaxPointerSize bytes is read and parsed, as
// git-lfs's own scanner does.
func (m *Mirror) scanCommit(ctx context.Context, id, commit string) (*scanResult, error) {
	m.scanMu.Lock()
	if r, ok := m.scans[id+" "+commit]; ok {
		m.scanMu.Unlock()
		return r, nil
	}
	m.scanMu.Unlock()
	out, err := m.o.Git.RunGit(ctx, id, false, nil, "ls-tree", "-r", "-z", "--long", "--full-tree", commit+"^{commit}", "--")
	if err != nil {
		return nil, fmt.Errorf("list files of %s: %w", commit, err)
	}
	tree, err := parseLsTree(out)
	if err != nil {
		return nil, fmt.Errorf("list files of %s: %w", commit, err)
	}
	var cands []treeEntry
	var ids bytes.Buffer
	seen := map[string]bool{}
	for _, e := range tree {
		if e.typ != "blob" || (e.mode != "100644" && e.mode != "100755") || e.size < 0 || e.size > MaxPointerSize {
			continue
		}
		cands = append(cands, e)
		if !seen[e.object] {
			seen[e.object] = true
			ids.WriteString(e.object + "\n")
		}
	}
	res := &scanResult{}
	if len(cands) > 0 {
		out, err := m.o.Git.RunGit(ctx, id, false, &ids, "cat-file", "--batch")
		if err != nil {
			return nil, fmt.Errorf("read small files of %s: %w", commit, err)
		}
		blobs, err := parseCatFileBatch(out)
		if err != nil {
			return nil, fmt.Errorf("read small files of %s: %w", commit, err)
		}
		for _, e := range cands {
			p, err := ParsePointer(blobs[e.object])
			switch {
			case errors.Is(err, ErrNotPointer):
			case err != nil:
				res.malformed = append(res.malformed, Malformed{Path: e.path, Error: err.Error()})
			default:
				res.entries = append(res.entries, Entry{Path: e.path, Pointer: p})
			}
		}
	}
	m.scanMu.Lock()
	if len(m.scans) >= maxScans {
		clear(m.scans) // commits are immutable: a lost entry is only rescanned
	}
	m.scans[id+" "+commit] = res
	m.scanMu.Unlock()
	return res, nil
}

// maxScans bounds the cached scan results.
const maxScans = 1024

// parseCatFileBatch parses `git cat-file --batch` output of blobs of at most
// MaxPointerSize bytes: "<object> SP <type> SP <size> LF <content> LF" each.
func parseCatFileBatch(out []byte) (map[string][]byte, error) {
	blobs := map[string][]byte{}
	br := bufio.NewReader(bytes.NewReader(out))
	for {
		hdr, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) && hdr == "" {
			return blobs, nil
		}
		if err != nil {
			return nil, errors.New("cat-file: truncated header")
		}
		f := strings.Fields(hdr)
		if len(f) == 2 && f[1] == "missing" {
			return nil, fmt.Errorf("cat-file: object %s missing", short(f[0]))
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("cat-file: malformed header %q", short(hdr))
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n > MaxPointerSize {
			return nil, fmt.Errorf("cat-file: bad size in %q", short(hdr))
		}
		b := make([]byte, n+1)
		if _, err := io.ReadFull(br, b); err != nil || b[n] != '\n' {
			return nil, errors.New("cat-file: truncated content")
		}
		blobs[f[0]] = b[:n]
	}
}

// scanHistory lists the pointer files of every revision reachable from the
// repository's refs, each object once, with one path that holds it: all
// refs (branches, tags, the hidden upstream tips of gated branches, kept
// tips), or with served only those the mirror serves to clients (what
// their `git lfs fetch --all` walks; refs/ballast is hidden from them).
// Blobs over MaxPointerSize are left out by git itself (rev-list
// --filter). The result is cached until a ref moves.
func (m *Mirror) scanHistory(ctx context.Context, r *repoState, served bool) (*scanResult, error) {
	refs, err := m.o.Git.RunGit(ctx, r.id, false, nil, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(refs)
	key := r.id + " refs:" + hex.EncodeToString(sum[:])
	revs := []string{"--all"}
	if served {
		key += " served"
		revs = []string{"--exclude=" + hiddenRefs + "*", "--all"}
	}
	m.scanMu.Lock()
	if res, ok := m.scans[key]; ok {
		m.scanMu.Unlock()
		return res, nil
	}
	m.scanMu.Unlock()
	res := &scanResult{}
	if len(bytes.TrimSpace(refs)) > 0 {
		args := append(append([]string{"rev-list", "--objects"}, revs...), "--filter=blob:limit="+strconv.Itoa(MaxPointerSize+1), "--")
		out, err := m.o.Git.RunGit(ctx, r.id, false, nil, args...)
		if err != nil {
			return nil, fmt.Errorf("list history: %w", err)
		}
		paths := map[string]string{}
		var ids bytes.Buffer
		for _, line := range strings.Split(string(out), "\n") {
			oid, path, ok := strings.Cut(line, " ")
			if !ok || path == "" {
				continue // commits and root trees
			}
			if _, dup := paths[oid]; !dup {
				paths[oid] = path
				ids.WriteString(oid + "\n")
			}
		}
		var blobs bytes.Buffer
		if ids.Len() > 0 {
			out, err := m.o.Git.RunGit(ctx, r.id, false, &ids, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)")
			if err != nil {
				return nil, fmt.Errorf("list history: %w", err)
			}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) == 3 && f[1] == "blob" {
					if n, err := strconv.Atoi(f[2]); err == nil && n <= MaxPointerSize {
						blobs.WriteString(f[0] + "\n")
					}
				}
			}
		}
		if blobs.Len() > 0 {
			out, err := m.o.Git.RunGit(ctx, r.id, false, &blobs, "cat-file", "--batch")
			if err != nil {
				return nil, fmt.Errorf("read small files: %w", err)
			}
			contents, err := parseCatFileBatch(out)
			if err != nil {
				return nil, fmt.Errorf("read small files: %w", err)
			}
			seen := map[string]bool{}
			for blob, b := range contents {
				p, err := ParsePointer(b)
				switch {
				case errors.Is(err, ErrNotPointer):
				case err != nil:
					res.malformed = append(res.malformed, Malformed{Path: paths[blob], Error: err.Error()})
				case !seen[p.OID]:
					seen[p.OID] = true
					res.entries = append(res.entries, Entry{Path: paths[blob], Pointer: p})
				}
			}
			sort.Slice(res.entries, func(i, j int) bool { return res.entries[i].Path < res.entries[j].Path })
		}
	}
	m.scanMu.Lock()
	if len(m.scans) >= maxScans {
		clear(m.scans)
	}
	m.scans[key] = res
	m.scanMu.Unlock()
	return res, nil
}

// hiddenRefs is the ref namespace the git mirror hides from clients
// (gitmirror: uploadpack.hideRefs).
const hiddenRefs = "refs/ballast/"

// scanCommits lists the pointer files of the trees of commits (a
// dependency repository's needed commits), each object once, with one
// path that holds it.
func (m *Mirror) scanCommits(ctx context.Context, r *repoState, commits []string) (*scanResult, error) {
	res := &scanResult{}
	seen := map[string]bool{}
	bad := map[string]bool{}
	for _, c := range commits {
		sr, err := m.scanCommit(ctx, r.id, c)
		if err != nil {
			return nil, err
		}
		for _, e := range sr.entries {
			if !seen[e.OID] {
				seen[e.OID] = true
				res.entries = append(res.entries, e)
			}
		}
		for _, x := range sr.malformed {
			if !bad[x.Path] {
				bad[x.Path] = true
				res.malformed = append(res.malformed, x)
			}
		}
	}
	sort.Slice(res.entries, func(i, j int) bool { return res.entries[i].Path < res.entries[j].Path })
	return res, nil
}
