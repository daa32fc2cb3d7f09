package render

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/images"
)

// KustomizeOptions are the overrides an Argo CD Application can make to a
// kustomization. Argo CD applies them with `kustomize edit set …` before
// `kustomize build`; here they are applied to an in-memory copy of the
// kustomization file, so the repository is never written.
type KustomizeOptions struct {
	Images     []string // "name=new:tag", "name:tag", "name@digest", "name=new"
	NamePrefix string
	NameSuffix string
	Namespace  string
	Components []string         // appended to components
	Patches    []map[string]any // appended to patches
}

func (o KustomizeOptions) empty() bool {
	return len(o.Images) == 0 && o.NamePrefix == "" && o.NameSuffix == "" && o.Namespace == "" &&
		len(o.Components) == 0 && len(o.Patches) == 0
}

// renderKustomize builds a kustomization with krusty, in-process, with
// Kustomize's default (root-only) load restrictions, as Argo CD does by
// default.
func renderKustomize(_ context.Context, src Source) ([]images.Object, error) {
	dir, err := filepath.Abs(src.Path)
	if err != nil {
		return nil, err
	}
	var fsys filesys.FileSystem = filesys.MakeFsOnDisk()
	kfile := ""
	for _, name := range kustomizationFiles {
		if isFile(filepath.Join(dir, name)) {
			kfile = filepath.Join(dir, name)
			break
		}
	}
	if kfile == "" {
		return nil, fmt.Errorf("%s: no kustomization file", src.Path)
	}
	if !src.Kustomize.empty() {
		data, err := fsys.ReadFile(kfile)
		if err != nil {
			return nil, err
		}
		edited, err := editKustomization(data, src.Kustomize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kfile, err)
		}
		fsys = overlayFS{FileSystem: fsys, path: kfile, data: edited}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", src.Path, err)
	}
	var objs []images.Object
	for _, res := range resMap.Resources() {
		m, err := res.Map()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", src.Path, err)
		}
		objs = append(objs, images.Object{File: filepath.Join(src.Path, filepath.Base(kfile)), Doc: m})
	}
	return objs, nil
}

// overlayFS is the disk with one file's content replaced.
type overlayFS struct {
	filesys.FileSystem
	path string
	data []byte
}

func (o overlayFS) ReadFile(p string) ([]byte, error) {
	if filepath.Clean(p) == o.path {
		return append([]byte(nil), o.data...), nil
	}
	return o.FileSystem.ReadFile(p)
}

// editKustomization applies o to a kustomization file's content the way
// `kustomize edit set image|nameprefix|namesuffix|namespace` and `edit add
// component|patch` would.
func editKustomization(data []byte, o KustomizeOptions) ([]byte, error) {
	k := map[string]any{}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, err
	}
	if o.NamePrefix != "" {
		k["namePrefix"] = o.NamePrefix
	}
	if o.NameSuffix != "" {
		k["nameSuffix"] = o.NameSuffix
	}
	if o.Namespace != "" {
		k["namespace"] = o.Namespace
	}
	for _, c := range o.Components {
		list, _ := k["components"].([]any)
		k["components"] = append(list, c)
	}
	for _, p := range o.Patches {
		list, _ := k["patches"].([]any)
		k["patches"] = append(list, p)
	}
	for _, spec := range o.Images {
		img, err := parseImageOverride(spec)
		if err != nil {
			return nil, err
		}
		list, _ := k["images"].([]any)
		k["images"] = setImage(list, img)
	}
	return yaml.Marshal(k)
}

// imageOverride is one kustomize images entry.
type imageOverride struct {
	name, newName, newTag, digest string
}

// parseImageOverride reads an Argo CD kustomize image: the argument of
// `kustomize edit set image`, "[name=]newName[:tag][@digest]", where a
// newName of "*" keeps the name.
func parseImageOverride(s string) (imageOverride, error) {
	if s == "" || strings.ContainsAny(s, " \t\n") {
		return imageOverride{}, fmt.Errorf("kustomize image %q: want [name=]image[:tag][@digest]", s)
	}
	name, value, hasEq := strings.Cut(s, "=")
	if !hasEq {
		value = s
	}
	var img imageOverride
	rest := value
	if r, d, ok := strings.Cut(rest, "@"); ok {
		rest, img.digest = r, d
		if d == "" {
			return imageOverride{}, fmt.Errorf("kustomize image %q: empty digest", s)
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		rest, img.newTag = rest[:i], rest[i+1:]
		if img.newTag == "" {
			return imageOverride{}, fmt.Errorf("kustomize image %q: empty tag", s)
		}
	}
	if !hasEq {
		name = rest
	} else if rest != "*" && rest != name {
		img.newName = rest
	}
	if name == "" || rest == "" {
		return imageOverride{}, fmt.Errorf("kustomize image %q: want [name=]image[:tag][@digest]", s)
	}
	img.name = name
	return img, nil
}

// setImage updates the entry for img.name or appends one. A new tag
// replaces a digest and the other way round, as only one can apply.
func setImage(list []any, img imageOverride) []any {
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok || m["name"] != img.name {
			continue
		}
		if img.newName != "" {
			m["newName"] = img.newName
		}
		if img.newTag != "" {
			m["newTag"] = img.newTag
			delete(m, "digest")
		}
		if img.digest != "" {
			m["digest"] = img.digest
			delete(m, "newTag")
		}
		list[i] = m
		return list
	}
	m := map[string]any{"name": img.name}
	if img.newName != "" {
		m["newName"] = img.newName
	}
	if img.newTag != "" {
		m["newTag"] = img.newTag
	}
	if img.digest != "" {
		m["digest"] = img.digest
	}
	return append(list, m)
}
