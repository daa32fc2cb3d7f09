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

	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/ocitar"
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
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format %q, want %q", ManifestName, m.Format, Format)
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
	if !seen[LayoutPrefix+"/index.json"] {
		return nil, fmt.Errorf("%s: no %s/index.json listed", ManifestName, LayoutPrefix)
	}
	return &m, nil
}

// SortFiles sorts files by name (the manifest's order).
func SortFiles(fs []File) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
}
