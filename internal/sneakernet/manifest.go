// Package sneakernet carries a revision to a site that has no link: export
// writes one tar file holding the revision's bundle (an OCI image layout)
// and a git bundle of the repository, with a manifest of checksums; import
// verifies all of it before loading the git objects into the edge mirror
// and the bundle into the edge registry, as sync would (bundle index last).
package sneakernet

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// Names inside the export file.
const (
	ManifestName = "ballast-export.json"
	LayoutPrefix = "oci"
	GitBundle    = "git/repo.bundle"
	// Format identifies the manifest's schema.
	Format = "ballast-export/v1"
)

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
	Files     []File   `json:"files"`
}

var (
	shaRE    = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// maxManifestSize bounds the manifest read from an export file.
const maxManifestSize = 64 << 20

// ParseManifest validates the manifest of an export file.
func ParseManifest(raw []byte) (*Manifest, error) {
	if len(raw) > maxManifestSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", ManifestName, maxManifestSize)
	}
	var m Manifest
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format %q, want %q", ManifestName, m.Format, Format)
	}
	if !shaRE.MatchString(m.Revision) {
		return nil, fmt.Errorf("%s: revision %q is not a full commit SHA", ManifestName, m.Revision)
	}
	if m.Since != "" && !shaRE.MatchString(m.Since) {
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
		n, err := transfer.CleanTarName(f.Name)
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
	if _, err := bundle.ParsePlatforms(strings.Join(m.Platforms, ",")); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if m.HasGit && !seen[GitBundle] {
		return nil, fmt.Errorf("%s: git bundle announced but not listed", ManifestName)
	}
	if !seen[LayoutPrefix+"/index.json"] {
		return nil, fmt.Errorf("%s: no %s/index.json listed", ManifestName, LayoutPrefix)
	}
	return &m, nil
}

func sortFiles(fs []File) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
}
