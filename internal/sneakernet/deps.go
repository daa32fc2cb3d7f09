package sneakernet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/exportfile"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/lfs"
	"github.com/ballast-dev/ballast/internal/ocitar"
)

// depRepo is one dependency repository of an export: the commits the
// revision needs and those the --since revision needed (the site has them).
type depRepo struct {
	id, url string
	want    map[string]bool
	have    map[string]bool
}

// groupDeps groups the git dependencies of b (and, as what the site has,
// of since) by repository, in id order.
func groupDeps(b, since *bundle.Bundle) ([]*depRepo, error) {
	byID := map[string]*depRepo{}
	add := func(d bundle.GitDep, want bool) error {
		id, err := gitdeps.ID(d.URL)
		if err != nil {
			return fmt.Errorf("git dependency %s: %w", d.URL, err)
		}
		key := strings.ToLower(id)
		r := byID[key]
		if r == nil {
			if !want {
				return nil
			}
			r = &depRepo{id: id, url: d.URL, want: map[string]bool{}, have: map[string]bool{}}
			byID[key] = r
		}
		if want {
			r.want[d.Commit] = true
		} else {
			r.have[d.Commit] = true
		}
		return nil
	}
	for _, d := range b.GitDeps {
		if err := add(d, true); err != nil {
			return nil, err
		}
	}
	if since != nil {
		for _, d := range since.GitDeps {
			if err := add(d, false); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*depRepo, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// exportGitDeps writes one git bundle per dependency repository of b under
// work/git/deps: the needed commits the site lacks (those of since are
// left out and, when present, are the bundle's prerequisites). Commits are
// fetched from the repository's upstream URL, or from mirror
// (<mirror>/git/<id>.git) when set, into a temporary bare repository in
// tmpRoot.
func exportGitDeps(ctx context.Context, work, tmpRoot, mirror string, b, since *bundle.Bundle) ([]exportfile.GitDeps, int, error) {
	repos, err := groupDeps(b, since)
	if err != nil {
		return nil, 0, inputErr(err)
	}
	var out []exportfile.GitDeps
	commits := 0
	for _, r := range repos {
		var want, prereq []string
		for c := range r.want {
			if !r.have[c] {
				want = append(want, c)
			}
		}
		if len(want) == 0 {
			continue // the site has every commit
		}
		for c := range r.have {
			if !r.want[c] {
				prereq = append(prereq, c)
			}
		}
		sort.Strings(want)
		sort.Strings(prereq)
		src := r.url
		if mirror != "" {
			src = strings.TrimSuffix(mirror, "/") + "/git/" + r.id + ".git"
		}
		name := fmt.Sprintf("%s/%d.bundle", exportfile.GitDepsPrefix, len(out))
		pre, err := depBundle(ctx, tmpRoot, src, want, prereq, filepath.Join(work, filepath.FromSlash(name)))
		if err != nil {
			return nil, 0, fmt.Errorf("git dependency %s: %w", r.url, err)
		}
		out = append(out, exportfile.GitDeps{URL: r.url, Bundle: name, Commits: want, Prerequisites: pre})
		commits += len(want)
	}
	return out, commits, nil
}

// depBundle fetches want (and, if the upstream has them, prereq) from src
// and writes a git bundle holding each of want as refs/ballast/export/<sha>,
// excluding what the prerequisites reach. It returns the prerequisites
// used.
func depBundle(ctx context.Context, tmpRoot, src string, want, prereq []string, out string) ([]string, error) {
	dir, err := os.MkdirTemp(tmpRoot, "dep-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := run(ctx, dir, "init", "--quiet", "--bare", "--template="); err != nil {
		return nil, err
	}
	all := append(append([]string(nil), want...), prereq...)
	// The URL comes from the bundle index: network transports only (no
	// file://, ext::), as the mirror fetches them.
	fetch := func(args ...string) error {
		_, err := outputEnv(ctx, dir, nil, []string{"GIT_ALLOW_PROTOCOL=http:https:ssh:git"}, append([]string{"fetch", "--quiet", "--no-tags", "--", src}, args...)...)
		return err
	}
	if err := fetch(all...); err != nil {
		// Upstreams that refuse fetches by SHA: every branch and tag.
		if err2 := fetch("+refs/heads/*:refs/x/heads/*", "+refs/tags/*:refs/x/tags/*"); err2 != nil {
			return nil, errors.Join(err, err2)
		}
	}
	for _, c := range want {
		if err := run(ctx, dir, "cat-file", "-e", c+"^{commit}"); err != nil {
			return nil, fmt.Errorf("commit %s not found at %s", c, src)
		}
		if err := run(ctx, dir, "update-ref", "refs/ballast/export/"+c, c); err != nil {
			return nil, err
		}
	}
	var pre []string
	for _, c := range prereq {
		if run(ctx, dir, "cat-file", "-e", c+"^{commit}") == nil {
			pre = append(pre, c)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	args := []string{"bundle", "create", "--quiet", out}
	for _, c := range want {
		args = append(args, "refs/ballast/export/"+c)
	}
	err = run(ctx, dir, append(args, negate(pre)...)...)
	if err != nil && strings.Contains(err.Error(), "empty bundle") {
		// A wanted commit the prerequisites reach (an older submodule
		// commit): carry it whole.
		pre = nil
		err = run(ctx, dir, args...)
	}
	if err != nil {
		return nil, err
	}
	return pre, nil
}

func negate(cs []string) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = "^" + c
	}
	return out
}

// LFS objects of an export: those the pointer files of the exported
// history (branches and tags, minus what since reaches) point at.

// lfsPointers lists the LFS pointers of the history the git bundle
// carries. Files that look like pointers but are malformed are left to the
// site's gate, which names them.
func lfsPointers(ctx context.Context, dir, since string) ([]lfs.Pointer, error) {
	args := []string{"rev-list", "--objects", "--filter=blob:limit=" + strconv.Itoa(lfs.MaxPointerSize+1), "--branches", "--tags"}
	if since != "" {
		args = append(args, "^"+since)
	}
	list, err := output(ctx, dir, nil, append(args, "--")...)
	if err != nil {
		return nil, err
	}
	var ids bytes.Buffer
	seen := map[string]bool{}
	for _, line := range strings.Split(string(list), "\n") {
		oid, path, ok := strings.Cut(line, " ")
		if ok && path != "" && !seen[oid] {
			seen[oid] = true
			ids.WriteString(oid + "\n")
		}
	}
	if ids.Len() == 0 {
		return nil, nil
	}
	raw, err := output(ctx, dir, &ids, "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	var ps []lfs.Pointer
	got := map[string]bool{}
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := br.ReadString('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		f := strings.Fields(hdr)
		if len(f) != 3 {
			continue // "<oid> missing"
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("git cat-file: bad header %q", hdr)
		}
		body := make([]byte, n+1)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, fmt.Errorf("git cat-file: %w", err)
		}
		if f[1] != "blob" || n > lfs.MaxPointerSize {
			continue
		}
		p, err := lfs.ParsePointer(body[:n])
		if err != nil || got[p.OID] {
			continue
		}
		got[p.OID] = true
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].OID < ps[j].OID })
	return ps, nil
}

// exportLFS copies the LFS objects of the exported history into
// work/lfs/<oid>, each verified (sha256 and size). Objects are taken from
// git-lfs's storage of dir (lfs/objects of a bare repository or of
// .git); the others are fetched with `git lfs fetch --all` from endpoint
// into a temporary storage. No pointer: nothing, and no git-lfs needed.
func exportLFS(ctx context.Context, work, tmpRoot, dir, since, endpoint string) ([]exportfile.LFSObject, error) {
	ps, err := lfsPointers(ctx, dir, since)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	local := func(oid string) string {
		for _, root := range []string{filepath.Join(dir, "lfs", "objects"), filepath.Join(dir, ".git", "lfs", "objects")} {
			p := filepath.Join(root, oid[0:2], oid[2:4], oid)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p
			}
		}
		return ""
	}
	var missing []lfs.Pointer
	for _, p := range ps {
		if local(p.OID) == "" {
			missing = append(missing, p)
		}
	}
	staging := ""
	if len(missing) > 0 {
		if endpoint == "" {
			return nil, inputErr(fmt.Errorf("%d LFS objects are not in %s's LFS storage (first %s) and no LFS endpoint to fetch them from", len(missing), dir, missing[0].OID))
		}
		staging, err = os.MkdirTemp(tmpRoot, "lfs-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(staging)
		// Objects held locally are linked in, so git-lfs fetches only the
		// others.
		for _, p := range ps {
			if src := local(p.OID); src != "" {
				dst := filepath.Join(staging, "objects", p.OID[0:2], p.OID[2:4], p.OID)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return nil, err
				}
				if err := os.Link(src, dst); err != nil && !errors.Is(err, fs.ErrExist) {
					return nil, err
				}
			}
		}
		if _, err := output(ctx, dir, nil, "-c", "lfs.url="+endpoint, "-c", "lfs.storage="+staging,
			// The endpoint as the remote: a checkout without an origin
			// remote works too, and lfs.url wins over anything else.
			"-c", "lfs.transfer.maxretries=2", "lfs", "fetch", "--all", endpoint); err != nil {
			return nil, fmt.Errorf("git lfs fetch from %s: %w", endpoint, err)
		}
	}
	var out []exportfile.LFSObject
	for _, p := range ps {
		src := local(p.OID)
		if src == "" {
			src = filepath.Join(staging, "objects", p.OID[0:2], p.OID[2:4], p.OID)
		}
		if err := copyVerified(src, filepath.Join(work, filepath.FromSlash(exportfile.LFSName(p.OID))), p); err != nil {
			return nil, err
		}
		out = append(out, exportfile.LFSObject{OID: p.OID, Size: p.Size})
	}
	return out, nil
}

// copyVerified copies the LFS object at src to dst, checking its sha256 and
// size.
func copyVerified(src, dst string, p lfs.Pointer) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("LFS object %s: %w", p.OID, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(in, p.Size+1))
	if err != nil {
		return err
	}
	if n != p.Size || hex.EncodeToString(h.Sum(nil)) != p.OID {
		return fmt.Errorf("LFS object %s at %s: content does not match its sha256 and size", p.OID, src)
	}
	return f.Close()
}

func output(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	return outputEnv(ctx, dir, stdin, nil, args...)
}

// outputEnv runs git in dir with env added and returns its stdout.
func outputEnv(ctx context.Context, dir string, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdin = stdin
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0"), env...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out, nil
}

// Import side.

// GitDepsLoader loads a dependency repository's commits from a git bundle
// (gitmirror.Mirror.LoadDepBundle).
type GitDepsLoader interface {
	LoadDepBundle(ctx context.Context, url, path string, commits []string) error
}

// LFSImporter stores verified LFS objects (lfs.Mirror.ImportObject).
type LFSImporter interface {
	ImportObject(ctx context.Context, idOrURL, oid string, size int64, r io.Reader) (bool, error)
}

// extractDeps writes the dependency bundles of the file into tmp and
// checks, before anything is written to the site, that each holds every
// commit it is recorded with. It returns their paths, in manifest order.
func extractDeps(ctx context.Context, a *ocitar.Archive, m *exportfile.Manifest, tmp string) ([]string, error) {
	var paths []string
	for i, g := range m.GitDeps {
		p := filepath.Join(tmp, fmt.Sprintf("dep-%d.bundle", i))
		if err := extractFile(a, g.Bundle, p); err != nil {
			return nil, err
		}
		heads, err := output(ctx, tmp, nil, "bundle", "list-heads", p)
		if err != nil {
			return nil, inputErr(fmt.Errorf("git dependency %s: %s: %w", g.URL, g.Bundle, err))
		}
		have := map[string]bool{}
		for _, line := range strings.Split(string(heads), "\n") {
			if obj, ref, ok := strings.Cut(line, " "); ok && ref == "refs/ballast/export/"+obj {
				have[obj] = true
			}
		}
		for _, c := range g.Commits {
			if !have[c] {
				return nil, inputErr(fmt.Errorf("git dependency %s: %s does not hold commit %s", g.URL, g.Bundle, c))
			}
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// importLFS stores the file's LFS objects; objects on site are skipped.
func importLFS(ctx context.Context, imp LFSImporter, repoURL string, a *ocitar.Archive, objs []exportfile.LFSObject) (added int, bytes int64, err error) {
	for _, o := range objs {
		r, err := a.File(exportfile.LFSName(o.OID))
		if err != nil {
			return added, bytes, inputErr(err)
		}
		ok, err := imp.ImportObject(ctx, repoURL, o.OID, o.Size, r)
		if err != nil {
			return added, bytes, fmt.Errorf("LFS object %s: %w", o.OID, err)
		}
		if ok {
			added++
			bytes += o.Size
		}
	}
	return added, bytes, nil
}
