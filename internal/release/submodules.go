package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/render"
)

// maxSubmoduleDepth bounds nested submodules.
const maxSubmoduleDepth = 8

// submoduleFiller fills the submodules of a checkout, as Argo CD's
// `git submodule update --init --recursive` does: every gitlink that
// .gitmodules maps gets the tree of its recorded commit, fetched from the
// submodule's upstream (a relative URL resolved against the
// superproject's), recursively. A submodule that cannot be read is an
// error, never a directory silently left empty.
type submoduleFiller struct {
	tmp  string // bare repositories of fetched submodules
	n    int
	deps []bundle.GitDep
}

// fillSubmodules writes the submodules of commit sha of the repository at
// repoDir (a checkout) into dir, the revision's tree written by Checkout,
// and returns what it used. sourceURL is the superproject's upstream URL
// ("" without origin: then relative submodule URLs are bad input).
// Errors in what the revision says (.gitmodules, URLs, missing commits)
// are ErrInput.
func fillSubmodules(ctx context.Context, repoDir, sha, sourceURL, dir string) ([]bundle.GitDep, error) {
	gitDir, err := git(ctx, repoDir, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "ballast-submodules-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	f := &submoduleFiller{tmp: tmp}
	if err := f.fill(ctx, gitDir, sha, sourceURL, dir, "", 0); err != nil {
		return nil, err
	}
	return f.deps, nil
}

func (f *submoduleFiller) fill(ctx context.Context, gitDir, sha, superURL, dir, prefix string, depth int) error {
	links, err := gitlinks(ctx, gitDir, sha)
	if err != nil {
		return err
	}
	if len(links) == 0 {
		return nil
	}
	where := "the revision"
	if prefix != "" {
		where = "submodule " + strings.TrimSuffix(prefix, "/")
	}
	if depth >= maxSubmoduleDepth {
		return inputErr(fmt.Errorf("%s: submodules nested more than %d deep", where, maxSubmoduleDepth))
	}
	subs, err := readGitmodules(ctx, gitDir, sha)
	if err != nil {
		return inputErr(fmt.Errorf("%s: %w", where, err))
	}
	byPath := map[string]gitdeps.Submodule{}
	for _, s := range subs {
		byPath[strings.TrimSuffix(s.Path, "/")] = s
	}
	for _, l := range links {
		s, ok := byPath[l.path]
		if !ok {
			// git submodule update fails the same way.
			return inputErr(fmt.Errorf("%s: gitlink %s has no url in .gitmodules", where, prefix+l.path))
		}
		if superURL == "" && gitdeps.IsRelative(s.URL) {
			return inputErr(fmt.Errorf("%s: submodule %s has the relative URL %q and the checkout has no origin remote to resolve it against", where, prefix+l.path, s.URL))
		}
		u, err := gitdeps.ResolveSubmoduleURL(superURL, s.URL)
		if err != nil {
			return inputErr(fmt.Errorf("%s: submodule %s: %w", where, prefix+l.path, err))
		}
		sub, err := f.fetch(ctx, u, l.commit)
		if err != nil {
			return inputErr(fmt.Errorf("%s: submodule %s (%s at %s) cannot be read: %w", where, prefix+l.path, u, l.commit, err))
		}
		if err := archiveInto(ctx, sub, l.commit, filepath.Join(dir, filepath.FromSlash(l.path))); err != nil {
			return fmt.Errorf("submodule %s: %w", prefix+l.path, err)
		}
		f.deps = append(f.deps, bundle.GitDep{Kind: bundle.GitDepSubmodule, URL: u, Commit: l.commit, Path: prefix + l.path})
		if err := f.fill(ctx, sub, l.commit, u, filepath.Join(dir, filepath.FromSlash(l.path)), prefix+l.path+"/", depth+1); err != nil {
			return err
		}
	}
	return nil
}

// gitEnvRemote is added to git commands that fetch submodules: only the
// transports gitdeps allows, even through redirects.
var gitEnvRemote = []string{"GIT_ALLOW_PROTOCOL=http:https:ssh", "GIT_TERMINAL_PROMPT=0"}

// fetch brings commit of the repository at url into a bare repository of
// its own and returns its git dir: first the commit alone (shallow, by
// SHA, as protocol v2 servers allow), else every branch and tag.
func (f *submoduleFiller) fetch(ctx context.Context, url, commit string) (string, error) {
	f.n++
	dir := filepath.Join(f.tmp, fmt.Sprintf("m%d.git", f.n))
	if _, err := runGit(ctx, nil, "init", "--quiet", "--bare", dir); err != nil {
		return "", err
	}
	_, err := runGit(ctx, gitEnvRemote, "--git-dir="+dir, "fetch", "--quiet", "--no-tags", "--depth=1", "--", url, commit)
	if err != nil {
		_, err2 := runGit(ctx, gitEnvRemote, "--git-dir="+dir, "fetch", "--quiet", "--no-tags", "--", url,
			"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
		if err2 != nil {
			return "", errors.Join(err, err2)
		}
	}
	if _, err := runGit(ctx, nil, "--git-dir="+dir, "cat-file", "-e", commit+"^{commit}"); err != nil {
		return "", fmt.Errorf("commit %s is not in the repository", commit)
	}
	return dir, nil
}

type gitlink struct{ path, commit string }

// gitlinks lists the submodule entries (mode 160000) of commit's tree.
func gitlinks(ctx context.Context, gitDir, commit string) ([]gitlink, error) {
	out, err := runGit(ctx, nil, "--git-dir="+gitDir, "ls-tree", "-r", "-z", "--full-tree", commit)
	if err != nil {
		return nil, err
	}
	var links []gitlink
	for _, e := range bytes.Split(out, []byte{0}) {
		meta, p, ok := bytes.Cut(e, []byte{'\t'})
		if !ok {
			continue
		}
		f := strings.Fields(string(meta))
		if len(f) == 3 && f[0] == "160000" && f[1] == "commit" {
			if !fullSHA.MatchString(f[2]) {
				return nil, inputErr(fmt.Errorf("gitlink %q: object %q is not a SHA-1 commit", p, f[2]))
			}
			links = append(links, gitlink{path: string(p), commit: f[2]})
		}
	}
	return links, nil
}

// readGitmodules parses .gitmodules of commit with git itself (as Argo
// CD's git does) and validates it (gitdeps.ParseConfigList).
func readGitmodules(ctx context.Context, gitDir, commit string) ([]gitdeps.Submodule, error) {
	size, err := runGit(ctx, nil, "--git-dir="+gitDir, "cat-file", "-s", commit+":.gitmodules")
	if err != nil {
		return nil, errors.New("gitlinks but no .gitmodules")
	}
	// git's parse of it is read whole into memory.
	if n, err := strconv.ParseInt(strings.TrimSpace(string(size)), 10, 64); err != nil || n > gitdeps.MaxGitmodulesSize {
		return nil, fmt.Errorf(".gitmodules of %s bytes, at most %d", strings.TrimSpace(string(size)), gitdeps.MaxGitmodulesSize)
	}
	out, err := runGit(ctx, nil, "--git-dir="+gitDir, "config", "--blob", commit+":.gitmodules", "-z", "--list")
	if err != nil {
		return nil, fmt.Errorf(".gitmodules: %w", err)
	}
	return gitdeps.ParseConfigList(out)
}

// archiveInto writes the tree of commit into dir.
func archiveInto(ctx context.Context, gitDir, commit, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir="+gitDir, "archive", "--format=tar", commit)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	xerr := extract(out, dir)
	if xerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	if err := errors.Join(xerr, cmd.Wait()); err != nil {
		return fmt.Errorf("git archive %s: %w %s", commit, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// runGit runs git with the caller's environment plus env and returns its
// stdout; the error carries stderr.
func runGit(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", verbOf(args), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func verbOf(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return "?"
}

// resolveBases resolves the ref of every remote base to the commit
// Kustomize's `git fetch origin <ref>` gets now, with ls-remote (git's
// own lookup order: refs/<ref>, refs/tags/<ref>, refs/heads/<ref>; a tag
// is peeled to its commit; no ref is HEAD); a 40-hex ref is the commit
// itself. A base whose ref cannot be resolved is bad input.
//
// Remote bases of remote bases are followed too (Kustomize fetches them
// when it renders the outer one, so the mirror must serve them): each
// base's tree at its commit is read for the remote entries of its
// kustomization and of the local ones it includes, up to maxBaseDepth
// levels and maxBases bases in all.
func resolveBases(ctx context.Context, bases []gitdeps.RemoteBase) ([]bundle.GitDep, error) {
	seen := map[bundle.GitDep]bool{}
	var out []bundle.GitDep
	var tmp string
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	for depth := 0; len(bases) > 0; depth++ {
		if depth > maxBaseDepth {
			return nil, inputErr(fmt.Errorf("remote bases nested more than %d deep (first: %s)", maxBaseDepth, bases[0]))
		}
		var next []gitdeps.RemoteBase
		for _, rb := range bases {
			commit := rb.Ref
			if !fullSHA.MatchString(rb.Ref) {
				c, err := lsRemoteRef(ctx, rb.RepoURL, rb.Ref)
				if err != nil {
					return nil, inputErr(fmt.Errorf("remote base %s: %w", rb, err))
				}
				commit = c
			}
			d := bundle.GitDep{Kind: bundle.GitDepRemoteBase, URL: rb.RepoURL, Commit: commit, Path: rb.Path, Ref: rb.Ref}
			if seen[d] {
				continue
			}
			seen[d] = true
			out = append(out, d)
			if len(out) > maxBases {
				return nil, inputErr(fmt.Errorf("more than %d remote bases", maxBases))
			}
			if tmp == "" {
				var err error
				if tmp, err = os.MkdirTemp("", "ballast-bases-"); err != nil {
					return nil, err
				}
			}
			inner, err := innerBases(ctx, tmp, len(out), rb, commit)
			if err != nil {
				return nil, inputErr(fmt.Errorf("remote base %s at %s: %w", rb, commit, err))
			}
			next = append(next, inner...)
		}
		bases = next
	}
	return out, nil
}

// Bounds on the remote bases resolveBases follows.
const (
	maxBaseDepth = 8
	maxBases     = 200
)

// innerBases fetches commit of remote base rb (shallow, by SHA, else its
// branches and tags), writes its tree under tmp and returns the remote
// bases its kustomization names. Local bases that leave the base's
// repository are refused.
func innerBases(ctx context.Context, tmp string, n int, rb gitdeps.RemoteBase, commit string) ([]gitdeps.RemoteBase, error) {
	f := &submoduleFiller{tmp: tmp, n: n * 1000}
	gitDir, err := f.fetch(ctx, rb.RepoURL, commit)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(gitDir)
	tree := filepath.Join(tmp, fmt.Sprintf("t%d", n))
	defer os.RemoveAll(tree)
	if err := archiveInto(ctx, gitDir, commit, tree); err != nil {
		return nil, err
	}
	dir := filepath.Join(tree, filepath.FromSlash(rb.Path))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("no directory %q in the repository", rb.Path)
	}
	return render.RemoteBasesWithin(dir, tree)
}

func lsRemoteRef(ctx context.Context, url, ref string) (string, error) {
	out, err := runGit(ctx, gitEnvRemote, "ls-remote", "--", url)
	if err != nil {
		return "", err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		obj, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && fullSHA.MatchString(obj) {
			refs[name] = obj
		}
	}
	cands := []string{"HEAD"}
	if ref != "" {
		cands = []string{ref, "refs/" + ref, "refs/tags/" + ref, "refs/heads/" + ref}
	}
	for _, c := range cands {
		if !strings.HasPrefix(c, "refs/") && c != "HEAD" {
			continue
		}
		if obj, ok := refs[c+"^{}"]; ok {
			return obj, nil
		}
		if obj, ok := refs[c]; ok {
			return obj, nil
		}
	}
	if ref == "" {
		return "", errors.New("the repository has no HEAD")
	}
	return "", fmt.Errorf("no ref %q in the repository", ref)
}
