package bundle

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/ballast-dev/ballast/internal/gitdeps"
)

// AnnotationGitDeps holds, on the bundle index, the other git repositories
// the revision needs: a JSON array of GitDep, sorted. Absent when there are
// none (and in bundles made before it existed).
const AnnotationGitDeps = "io.ballast.git.deps"

// Kinds of GitDep.
const (
	GitDepSubmodule  = "submodule"
	GitDepRemoteBase = "base"
)

// maxGitDeps bounds the entries of AnnotationGitDeps.
const maxGitDeps = 1000

// GitDep is one repository commit a revision needs besides its own: a
// submodule (at the commit the superproject's gitlink records; nested
// ones too) or a remote Kustomize base (at the commit its ref resolved to
// when the bundle was made).
type GitDep struct {
	Kind string `json:"kind"` // GitDepSubmodule or GitDepRemoteBase
	// URL is the upstream URL (gitdeps.Normalize form); a relative
	// submodule URL is resolved against its superproject's upstream URL.
	URL    string `json:"url"`
	Commit string `json:"commit"` // full 40-hex commit SHA
	// Path is, for a submodule, where it sits in the revision's tree
	// ("vendor/lib", nested "vendor/lib/sub"); for a base, the directory
	// inside its repository ("" for the root).
	Path string `json:"path,omitempty"`
	// Ref is, for a base, the ref as the kustomization names it (a branch,
	// a tag or the commit itself); "" for the remote's HEAD.
	Ref string `json:"ref,omitempty"`
}

func (d GitDep) check() error {
	if d.Kind != GitDepSubmodule && d.Kind != GitDepRemoteBase {
		return fmt.Errorf("kind %q: want %q or %q", d.Kind, GitDepSubmodule, GitDepRemoteBase)
	}
	if n, err := gitdeps.Normalize(d.URL); err != nil {
		return err
	} else if n != d.URL {
		return fmt.Errorf("url %q: not normalized (want %q)", d.URL, n)
	}
	if !shaRE.MatchString(d.Commit) {
		return fmt.Errorf("%s %s: commit %q is not a full 40-hex lowercase SHA", d.Kind, d.URL, d.Commit)
	}
	if d.Path != "" {
		if err := gitdeps.CheckPath(d.Path); err != nil {
			return fmt.Errorf("%s %s: path %q %w", d.Kind, d.URL, d.Path, err)
		}
	} else if d.Kind == GitDepSubmodule {
		return fmt.Errorf("submodule %s: no path", d.URL)
	}
	if strings.HasPrefix(d.Ref, "-") || strings.ContainsFunc(d.Ref, func(r rune) bool { return r <= 0x20 || r == 0x7f || r == ':' || r == '\\' }) {
		return fmt.Errorf("%s %s: bad ref %q", d.Kind, d.URL, d.Ref)
	}
	if d.Ref != "" && d.Kind == GitDepSubmodule {
		return fmt.Errorf("submodule %s: a ref is for remote bases only", d.URL)
	}
	return nil
}

func sortGitDeps(ds []GitDep) {
	sort.Slice(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.URL != b.URL {
			return a.URL < b.URL
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Ref != b.Ref {
			return a.Ref < b.Ref
		}
		return a.Commit < b.Commit
	})
}

// encodeGitDeps returns the annotation value for ds ("" for none).
func encodeGitDeps(ds []GitDep) (string, error) {
	if len(ds) == 0 {
		return "", nil
	}
	if len(ds) > maxGitDeps {
		return "", fmt.Errorf("%d git dependencies: more than %d", len(ds), maxGitDeps)
	}
	ds = append([]GitDep(nil), ds...)
	sortGitDeps(ds)
	for i, d := range ds {
		if err := d.check(); err != nil {
			return "", fmt.Errorf("git dependency: %w", err)
		}
		if i > 0 && ds[i-1] == d {
			return "", fmt.Errorf("git dependency %s %s@%s listed twice", d.Kind, d.URL, d.Commit)
		}
	}
	raw, err := json.Marshal(ds)
	if err != nil {
		return "", err
	}
	return string(raw), nil
}

// parseGitDeps reads the annotation value (outside input).
func parseGitDeps(s string) ([]GitDep, error) {
	if s == "" {
		return nil, nil
	}
	var ds []GitDep
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnotationGitDeps, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("annotation %s: trailing data", AnnotationGitDeps)
	}
	if len(ds) > maxGitDeps {
		return nil, fmt.Errorf("annotation %s: more than %d entries", AnnotationGitDeps, maxGitDeps)
	}
	for i, d := range ds {
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("annotation %s[%d]: %w", AnnotationGitDeps, i, err)
		}
	}
	sortGitDeps(ds)
	for i := 1; i < len(ds); i++ {
		if ds[i] == ds[i-1] {
			return nil, fmt.Errorf("annotation %s: %s %s@%s listed twice", AnnotationGitDeps, ds[i].Kind, ds[i].URL, ds[i].Commit)
		}
	}
	return ds, nil
}

// DepCommit is one commit of one git dependency repository: the
// repository's mirror id (gitdeps.ID) and the first GitDep naming it.
type DepCommit struct {
	ID  string
	Dep GitDep
}

// DistinctCommits returns each dependency commit of deps once, in their
// order, with its repository's mirror id; ids compare case-insensitively,
// as the mirror keys repositories. The LFS objects of a revision's
// dependencies are asked for per DepCommit (the edge's gate and `ballast
// verify`). An error names a URL gitdeps.ID refuses.
func DistinctCommits(deps []GitDep) ([]DepCommit, error) {
	var out []DepCommit
	seen := map[string]bool{}
	for _, d := range deps {
		id, err := gitdeps.ID(d.URL)
		if err != nil {
			return nil, fmt.Errorf("git dependency %s: %w", d.URL, err)
		}
		if key := strings.ToLower(id) + "@" + d.Commit; !seen[key] {
			seen[key] = true
			out = append(out, DepCommit{ID: id, Dep: d})
		}
	}
	return out, nil
}
