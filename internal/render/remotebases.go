package render

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/gitdeps"
)

// maxKustomizeDepth bounds how deep RemoteBases follows local bases.
const maxKustomizeDepth = 32

// RemoteBases returns the remote git bases (resources, bases, components
// entries that name another repository, see gitdeps.ParseRemoteBase) of
// the kustomization in dir and of every local kustomization it includes,
// sorted and deduplicated. A directory without a kustomization has none.
// Remote bases of remote bases are not followed (Kustomize fetches those
// itself; the mirror serves them only when they are recorded too). An
// entry that looks remote but is refused is an error.
func RemoteBases(dir string) ([]gitdeps.RemoteBase, error) {
	seen := map[string]bool{}
	found := map[gitdeps.RemoteBase]bool{}
	if err := remoteBases(dir, seen, found, 0); err != nil {
		return nil, err
	}
	out := make([]gitdeps.RemoteBase, 0, len(found))
	for rb := range found {
		out = append(out, rb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func remoteBases(dir string, seen map[string]bool, found map[gitdeps.RemoteBase]bool, depth int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if seen[abs] {
		return nil
	}
	seen[abs] = true
	if depth > maxKustomizeDepth {
		return fmt.Errorf("%s: kustomizations nested more than %d deep", dir, maxKustomizeDepth)
	}
	var kfile string
	for _, name := range kustomizationFiles {
		if isFile(filepath.Join(abs, name)) {
			kfile = filepath.Join(abs, name)
			break
		}
	}
	if kfile == "" {
		return nil
	}
	raw, err := os.ReadFile(kfile)
	if err != nil {
		return err
	}
	var k struct {
		Resources  []string `json:"resources"`
		Bases      []string `json:"bases"`
		Components []string `json:"components"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return fmt.Errorf("%s: %w", kfile, err)
	}
	for _, list := range [][]string{k.Resources, k.Bases, k.Components} {
		for _, e := range list {
			rb, remote, err := gitdeps.ParseRemoteBase(e)
			if err != nil {
				return fmt.Errorf("%s: %w", kfile, err)
			}
			if remote {
				found[rb] = true
				continue
			}
			p := e
			if !filepath.IsAbs(p) {
				p = filepath.Join(abs, filepath.FromSlash(e))
			}
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				if err := remoteBases(p, seen, found, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
