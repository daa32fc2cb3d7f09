// Package exportfile defines the sneakernet export file (a tar holding the
// bundle as an OCI layout, a git bundle, and a manifest of checksums) and
// reads it from outside input: every entry safe, every file listed and
// checksummed, the bundle index present and matching. It depends only on the
// standard library, ocitar and bundle, so its fuzz target runs fast.
package exportfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/ocitar"
)

// Names inside the export file.
const (
	ManifestName = "ballast-export.json"
	LayoutPrefix = "oci"
	GitBundle    = "git/repo.bundle"
	// GitDepsPrefix holds one git bundle per dependency repository
	// (format v2): git/deps/<n>.bundle.
	GitDepsPrefix = "git/deps"
	// LFSPrefix holds LFS objects by oid (format v2): lfs/<oid>.
	LFSPrefix = "lfs"
	// FormatV1 is the schema of files without dependencies or LFS
	// objects; writers keep using it for such files, so older importers
	// still read them.
	FormatV1 = "ballast-export/v1"
	// Format is the current schema: v1 plus gitDeps and lfs.
	Format = "ballast-export/v2"
)

// GitDeps is the git bundle of one dependency repository (a submodule's or
// a remote Kustomize base's) in a v2 export: it holds every commit of
// Commits, each as the head refs/ballast/export/<sha>, and needs
// Prerequisites (commits the site got with the --since export).
type GitDeps struct {
	URL           string   `json:"url"`    // upstream URL, gitdeps.Normalize form
	Bundle        string   `json:"bundle"` // file name, under GitDepsPrefix
	Commits       []string `json:"commits"`
	Prerequisites []string `json:"prerequisites,omitempty"`
}

// LFSObject is one LFS object of a v2 export, stored as LFSPrefix/<oid>:
// its file's sha256 is the oid and its size the pointer's size.
type LFSObject struct {
	OID  string `json:"oid"`
	Size int64  `json:"size"`
}

// LFSName is the file name of an LFS object in the export.
func LFSName(oid string) string { return LFSPrefix + "/" + oid }

// File is one checksummed file of the export.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes an export file.
type Manifest struct {
	Format     string `json:"format"`
	Revision   string `json:"revision"`
	Since      string `json:"since,omitempty"`
	Repository string `json:"repository"` // bundles repository it came from
	Source     string `json:"source,omitempty"`
	Bundle     string `json:"bundle"` // bundle index digest
	HasGit     bool   `json:"git"`
	// Platforms the bundle was exported for (empty: all).
	Platforms []string `json:"platforms,omitempty"`
	// GitDeps (v2): the submodule and remote base commits the revisions
	// of the file need, one git bundle per repository.
	GitDeps []GitDeps `json:"gitDeps,omitempty"`
	// LFS (v2): the LFS objects the files of the exported history point at
	// (of the configured repository), minus those of the --since history.
	LFS   []LFSObject `json:"lfs,omitempty"`
	Files []File      `json:"files"`
}

var (
	// ShaRE matches a full 40-hex commit SHA.
	ShaRE    = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// MaxManifestSize bounds the manifest read from an export file.
const MaxManifestSize = 64 << 20

// ParseManifest validates the manifest of an export file.
func ParseManifest(raw []byte) (*Manifest, error) {
	if len(raw) > MaxManifestSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", ManifestName, MaxManifestSize)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if m.Format != Format && m.Format != FormatV1 {
		return nil, fmt.Errorf("%s: format %q, want %q or %q (a newer ballast wrote it?)", ManifestName, m.Format, Format, FormatV1)
	}
	if m.Format == FormatV1 && (len(m.GitDeps) > 0 || len(m.LFS) > 0) {
		return nil, fmt.Errorf("%s: format %q has no gitDeps or lfs", ManifestName, FormatV1)
	}
	if !ShaRE.MatchString(m.Revision) {
		return nil, fmt.Errorf("%s: revision %q is not a full commit SHA", ManifestName, m.Revision)
	}
	if m.Since != "" && !ShaRE.MatchString(m.Since) {
		return nil, fmt.Errorf("%s: since %q is not a full commit SHA", ManifestName, m.Since)
	}
	if len(m.Bundle) != 71 || m.Bundle[:7] != "sha256:" || !sha256RE.MatchString(m.Bundle[7:]) {
		return nil, fmt.Errorf("%s: bundle digest %q is not a sha256 digest", ManifestName, m.Bundle)
	}
	if m.Repository == "" {
		return nil, fmt.Errorf("%s: repository missing", ManifestName)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		n, err := ocitar.CleanName(f.Name)
		if err != nil || n != f.Name || f.Name == ManifestName {
			return nil, fmt.Errorf("%s: files[%d]: bad name %q", ManifestName, i, f.Name)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("%s: files[%d]: %q listed twice", ManifestName, i, f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 || !sha256RE.MatchString(f.SHA256) {
			return nil, fmt.Errorf("%s: files[%d] %q: bad size or sha256", ManifestName, i, f.Name)
		}
	}
	if _, err := oci.ParsePlatforms(strings.Join(m.Platforms, ",")); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if m.HasGit && !seen[GitBundle] {
		return nil, fmt.Errorf("%s: git bundle announced but not listed", ManifestName)
	}
	if err := checkV2(&m, seen); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if !seen[LayoutPrefix+"/index.json"] {
		return nil, fmt.Errorf("%s: no %s/index.json listed", ManifestName, LayoutPrefix)
	}
	return &m, nil
}

// SortFiles sorts files by name (the manifest's order).
func SortFiles(fs []File) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
}

// Bounds on the v2 sections.
const (
	maxGitDepRepos   = 1000
	maxGitDepCommits = 10000
	maxLFSObjects    = 1000000
)

// checkV2 validates gitDeps and lfs against the listed files: each bundle
// and object listed once, object files whose checksum is their oid and
// whose size is the pointer's (so Verify's checksums prove the objects).
func checkV2(m *Manifest, seen map[string]bool) error {
	files := map[string]File{}
	for _, f := range m.Files {
		files[f.Name] = f
	}
	if len(m.GitDeps) > maxGitDepRepos {
		return fmt.Errorf("more than %d gitDeps", maxGitDepRepos)
	}
	commits := 0
	bundles := map[string]bool{}
	for i, g := range m.GitDeps {
		if n, err := gitdeps.Normalize(g.URL); err != nil || n != g.URL {
			return fmt.Errorf("gitDeps[%d]: url %q is not a normalized git URL", i, g.URL)
		}
		dir, base, _ := strings.Cut(g.Bundle, "/deps/")
		if dir != "git" || base == "" || strings.Contains(base, "/") || !strings.HasSuffix(base, ".bundle") || !seen[g.Bundle] || bundles[g.Bundle] {
			return fmt.Errorf("gitDeps[%d]: bundle %q not a listed %s/*.bundle file (or used twice)", i, g.Bundle, GitDepsPrefix)
		}
		bundles[g.Bundle] = true
		if len(g.Commits) == 0 {
			return fmt.Errorf("gitDeps[%d] %s: no commits", i, g.URL)
		}
		for _, c := range append(append([]string(nil), g.Commits...), g.Prerequisites...) {
			if !ShaRE.MatchString(c) {
				return fmt.Errorf("gitDeps[%d] %s: commit %q is not a full commit SHA", i, g.URL, c)
			}
		}
		commits += len(g.Commits)
		if commits > maxGitDepCommits {
			return fmt.Errorf("more than %d gitDeps commits", maxGitDepCommits)
		}
	}
	for n := range seen {
		if strings.HasPrefix(n, GitDepsPrefix+"/") && !bundles[n] {
			return fmt.Errorf("file %q is no gitDeps bundle", n)
		}
	}
	if len(m.LFS) > maxLFSObjects {
		return fmt.Errorf("more than %d lfs objects", maxLFSObjects)
	}
	oids := map[string]bool{}
	for i, o := range m.LFS {
		if !sha256RE.MatchString(o.OID) || o.Size < 0 || oids[o.OID] {
			return fmt.Errorf("lfs[%d]: bad or repeated oid %q or size %d", i, o.OID, o.Size)
		}
		oids[o.OID] = true
		f, ok := files[LFSName(o.OID)]
		if !ok {
			return fmt.Errorf("lfs[%d]: object %s not listed", i, o.OID)
		}
		if f.SHA256 != o.OID || f.Size != o.Size {
			return fmt.Errorf("lfs[%d]: file of object %s has sha256:%s and %d bytes, want the oid and %d bytes", i, o.OID, f.SHA256, f.Size, o.Size)
		}
	}
	for n := range seen {
		if oid, ok := strings.CutPrefix(n, LFSPrefix+"/"); ok && !oids[oid] {
			return fmt.Errorf("file %q is no lfs object", n)
		}
	}
	return nil
}
