package render

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
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
	// LoadRestrictorNone lets the kustomization read files outside its
	// directory, as Argo CD's `kustomize.buildOptions: --load-restrictor
	// LoadRestrictionsNone` setting does.
	LoadRestrictorNone bool
	// HelmCommand is the helm binary that inflates helmCharts (Argo CD's
	// `--enable-helm`); default DefaultHelmCommand on PATH. Charts are
	// fetched by ballast first; helm only runs `helm template`.
	HelmCommand string
}

// renderKustomize builds a kustomization with krusty, in-process, with
// Kustomize's default (root-only) load restrictions, as Argo CD does by
// default. helmCharts are fetched by ballast into their chartHome (inside
// the kustomization, as `kustomize build --enable-helm` would pull them)
// and inflated by the helm binary.
func renderKustomize(ctx context.Context, src Source) ([]images.Object, error) {
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
	data, err := fsys.ReadFile(kfile)
	if err != nil {
		return nil, err
	}
	// Kustomize's origin annotations tell which file each object came from;
	// they are requested here and removed again from the objects unless the
	// kustomization asked for them itself.
	edited, userOrigins, err := editKustomization(data, src.Kustomize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kfile, err)
	}
	fsys = overlayFS{FileSystem: fsys, path: kfile, data: edited}
	kopts := krusty.MakeDefaultOptions()
	if src.Kustomize.LoadRestrictorNone {
		kopts.LoadRestrictions = types.LoadRestrictionsNone
	}
	root := src.RepoRoot
	if root != "" {
		if root, err = filepath.Abs(root); err != nil {
			return nil, err
		}
	}
	hasCharts, err := prepareHelmCharts(ctx, src.Charts, dir, edited, root, map[string]bool{})
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", src.Path, err)
	}
	if hasCharts {
		helm, err := helmBinary(src.Kustomize.HelmCommand, kfile)
		if err != nil {
			return nil, err
		}
		kopts.PluginConfig.HelmConfig = types.HelmConfig{Enabled: true, Command: helm}
	}
	k := krusty.MakeKustomizer(kopts)
	resMap, err := k.Run(fsys, dir)
	if err != nil {
		if strings.Contains(err.Error(), "must specify --enable-helm") {
			return nil, fmt.Errorf("kustomize build %s: a kustomization it includes inflates Helm charts (helmCharts) that ballast did not find in a local kustomization: %w", src.Path, err)
		}
		return nil, fmt.Errorf("kustomize build %s: %w", src.Path, err)
	}
	var objs []images.Object
	for _, res := range resMap.Resources() {
		m, err := res.Map()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", src.Path, err)
		}
		file := filepath.Join(src.Path, filepath.Base(kfile))
		if origin := takeOrigin(m, !userOrigins); origin != "" {
			file = filepath.Join(src.Path, filepath.FromSlash(origin))
		}
		objs = append(objs, images.Object{File: file, Doc: m, Via: "kustomize " + src.Path})
	}
	return objs, nil
}

const originAnnotation = "config.kubernetes.io/origin"

// takeOrigin returns the local file an object came from, per its origin
// annotation (empty for remote or generated objects), and removes the
// annotation when remove is set.
func takeOrigin(obj map[string]any, remove bool) string {
	meta, _ := obj["metadata"].(map[string]any)
	annos, _ := meta["annotations"].(map[string]any)
	raw, _ := annos[originAnnotation].(string)
	if raw == "" {
		return ""
	}
	if remove {
		delete(annos, originAnnotation)
		if len(annos) == 0 {
			delete(meta, "annotations")
		}
	}
	var o struct {
		Path string `json:"path"`
		Repo string `json:"repo"`
	}
	if err := yaml.Unmarshal([]byte(raw), &o); err != nil || o.Repo != "" {
		return ""
	}
	return o.Path
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
// component|patch` would, and turns on origin annotations. It reports
// whether the kustomization had asked for origin annotations itself.
func editKustomization(data []byte, o KustomizeOptions) ([]byte, bool, error) {
	k := map[string]any{}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, false, err
	}
	if k == nil {
		k = map[string]any{}
	}
	meta, _ := k["buildMetadata"].([]any)
	hadOrigins := false
	for _, m := range meta {
		if m == "originAnnotations" {
			hadOrigins = true
		}
	}
	if !hadOrigins {
		k["buildMetadata"] = append(meta, "originAnnotations")
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
			return nil, false, err
		}
		list, _ := k["images"].([]any)
		k["images"] = setImage(list, img)
	}
	out, err := yaml.Marshal(k)
	return out, hadOrigins, err
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
