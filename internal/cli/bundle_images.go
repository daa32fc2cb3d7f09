package cli

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/release"
)

// plainYAMLImages is a temporary release.ImageLister: it reads the
// containers' image fields of plain YAML manifests (no Helm, no Kustomize).
// The lead replaces it with the renderer of `ballast images` at merge.
func plainYAMLImages(_ context.Context, dir string, spec release.AppSpec) ([]imageref.Ref, error) {
	p := spec.Path
	if spec.Application != "" {
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(spec.Application)))
		if err != nil {
			return nil, err
		}
		var app struct {
			Kind string `json:"kind"`
			Spec struct {
				Source  *struct{ Path string }  `json:"source"`
				Sources []struct{ Path string } `json:"sources"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(raw, &app); err != nil {
			return nil, fmt.Errorf("application %s: %w", spec.Application, err)
		}
		if app.Kind != "Application" {
			return nil, fmt.Errorf("application %s: kind %q, want Application", spec.Application, app.Kind)
		}
		switch {
		case app.Spec.Source != nil && app.Spec.Source.Path != "":
			p = app.Spec.Source.Path
		case len(app.Spec.Sources) > 0 && app.Spec.Sources[0].Path != "":
			p = app.Spec.Sources[0].Path
		default:
			return nil, fmt.Errorf("application %s: no spec.source.path", spec.Application)
		}
		if strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			return nil, fmt.Errorf("application %s: source path %q leaves the repository", spec.Application, p)
		}
	}
	root := filepath.Join(dir, filepath.FromSlash(p))
	var refs []imageref.Ref
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, doc := range docSep.Split(string(raw), -1) {
			var v any
			if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
				rel, _ := filepath.Rel(dir, path)
				return fmt.Errorf("%s document %d: %w", rel, i+1, err)
			}
			var perr error
			findImages(v, false, func(s string) {
				r, err := imageref.Parse(s)
				if err != nil && perr == nil {
					perr = err
				}
				refs = append(refs, r)
			})
			if perr != nil {
				return perr
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refs, nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// findImages calls f for the image of every container (containers,
// initContainers, ephemeralContainers lists, at any depth).
func findImages(v any, inContainers bool, f func(string)) {
	switch t := v.(type) {
	case map[string]any:
		if inContainers {
			if s, ok := t["image"].(string); ok && s != "" {
				f(s)
			}
		}
		for k, c := range t {
			findImages(c, k == "containers" || k == "initContainers" || k == "ephemeralContainers", f)
		}
	case []any:
		for _, c := range t {
			findImages(c, inContainers, f)
		}
	}
}
