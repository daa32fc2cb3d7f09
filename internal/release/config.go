// Package release builds the bundle of a git revision (`ballast bundle`):
// it finds the revision's images, resolves them to digests, copies them
// into the bundles repository (or an OCI layout) with the transfer engine,
// and writes the bundle index last.
package release

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
)

// ConfigFile is the name of the release config at the repository root.
const ConfigFile = "ballast.yaml"

// AppSpec is one thing to render: a directory of manifests (Path) or an Argo
// CD Application file (Application) whose source path is rendered.
type AppSpec struct {
	Path        string `json:"path,omitempty"`
	Application string `json:"application,omitempty"`
}

func (a AppSpec) String() string {
	if a.Application != "" {
		return "application " + a.Application
	}
	return "path " + a.Path
}

// Config is ballast.yaml.
type Config struct {
	Apps        []AppSpec `json:"apps"`
	ExtraImages []string  `json:"extraImages,omitempty"`
	Platforms   []string  `json:"platforms,omitempty"`
}

// maxConfigSize bounds ballast.yaml.
const maxConfigSize = 1 << 20

// ParseConfig reads ballast.yaml strictly: unknown fields, bad paths, bad
// image references and bad platforms are errors that name the field.
func ParseConfig(raw []byte) (*Config, error) {
	if len(raw) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", ConfigFile, maxConfigSize)
	}
	var c Config
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	return &c, nil
}

// Validate checks a config built from ballast.yaml or from flags.
func (c *Config) Validate() error {
	if len(c.Apps) == 0 && len(c.ExtraImages) == 0 {
		return errors.New("nothing to bundle: no apps and no extraImages")
	}
	for i, a := range c.Apps {
		switch {
		case a.Path != "" && a.Application != "":
			return fmt.Errorf("apps[%d]: set path or application, not both", i)
		case a.Path == "" && a.Application == "":
			return fmt.Errorf("apps[%d]: set path or application", i)
		}
		p := a.Path + a.Application
		if err := checkRelPath(p); err != nil {
			return fmt.Errorf("apps[%d]: %w", i, err)
		}
	}
	for i, s := range c.ExtraImages {
		if _, err := imageref.Parse(s); err != nil {
			return fmt.Errorf("extraImages[%d]: %w", i, err)
		}
	}
	if _, err := oci.ParsePlatforms(strings.Join(c.Platforms, ",")); err != nil {
		return fmt.Errorf("platforms: %w", err)
	}
	for i, p := range c.Platforms {
		if strings.Contains(p, ",") || strings.TrimSpace(p) == "" {
			return fmt.Errorf("platforms[%d]: %q is not one os/arch", i, p)
		}
	}
	return nil
}

// checkRelPath accepts only paths inside the repository.
func checkRelPath(p string) error {
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || strings.ContainsRune(p, 0) {
		return fmt.Errorf("path %q: want a relative path inside the repository", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return fmt.Errorf("path %q: leaves the repository", p)
		}
	}
	if path.Clean(p) == "." && p != "." {
		return fmt.Errorf("path %q: bad path", p)
	}
	return nil
}
