package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ballast-dev/ballast/internal/argoglob"
	"github.com/ballast-dev/ballast/internal/images"
)

// manifestFile is what Argo CD reads in a directory source.
var manifestFile = regexp.MustCompile(`^.*\.(yaml|yml|json|jsonnet)$`)

// skipMarker in a file makes Argo CD skip it.
const skipMarker = "+argocd:skip-file-rendering"

// renderDirectory reads a directory of plain manifests as Argo CD does:
// .yaml/.yml/.json files (subdirectories only with Recurse), filtered by the
// include and exclude globs on the path relative to the directory. A YAML
// file that fails to parse is skipped if it does not look like a
// Kubernetes manifest at all (a Helm values file, CI config), and is an
// error otherwise.
func renderDirectory(ctx context.Context, src Source) ([]images.Object, error) {
	var include, exclude *regexp.Regexp
	var err error
	if src.Directory.Include != "" {
		if include, err = argoglob.Compile(src.Directory.Include); err != nil {
			return nil, fmt.Errorf("%s: directory include: %w", src.Path, err)
		}
	}
	if src.Directory.Exclude != "" {
		if exclude, err = argoglob.Compile(src.Directory.Exclude); err != nil {
			return nil, fmt.Errorf("%s: directory exclude: %w", src.Path, err)
		}
	}
	root := src.RepoRoot
	if root == "" {
		root = src.Path
	}
	realRoot, err := realAbs(root)
	if err != nil {
		return nil, err
	}
	var objs []images.Object
	err = filepath.WalkDir(src.Path, func(p string, d fs.DirEntry, walkErr error) error {
		if walkErr != nil {
			return walkErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p != src.Path && !src.Directory.Recurse {
				return filepath.SkipDir
			}
			return nil
		}
		if !manifestFile.MatchString(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(src.Path, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := realAbs(p)
			if err != nil {
				src.Log.Warn("skipping manifest: symlink target missing", "file", p)
				return nil
			}
			if !within(realRoot, target) {
				return fmt.Errorf("%s: symlink points outside the repository (%s)", p, target)
			}
		}
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if exclude != nil && exclude.MatchString(rel) {
			return nil
		}
		if include != nil && !include.MatchString(rel) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(skipMarker)) {
			return nil
		}
		if strings.HasSuffix(d.Name(), ".jsonnet") {
			return fmt.Errorf("%s: jsonnet is not supported by ballast; render it to YAML or JSON", p)
		}
		got, err := images.Decode(p, data)
		if err != nil {
			if len(got) == 0 && !strings.HasSuffix(d.Name(), ".json") && !looksLikeManifest(data) {
				src.Log.Debug("skipping file that is not a Kubernetes manifest", "file", p, "reason", err)
				return nil
			}
			return err
		}
		objs = append(objs, got...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return objs, nil
}

// looksLikeManifest is Argo CD's test for whether a YAML file that does not
// parse as Kubernetes objects was meant to be one.
func looksLikeManifest(data []byte) bool {
	return bytes.Contains(data, []byte("apiVersion:")) &&
		bytes.Contains(data, []byte("kind:")) &&
		bytes.Contains(data, []byte("metadata:"))
}

// realAbs is p made absolute with every symlink resolved.
func realAbs(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// within reports whether p is root or below it (both already clean and
// symlink-free).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// errOutside is returned when a path leaves the repository.
var errOutside = errors.New("path leaves the repository root")
