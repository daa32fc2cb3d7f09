package render

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ballast-dev/ballast/internal/gitdeps"
)

// maxKustomizeDepth bounds how deep RemoteBases follows local bases.
const maxKustomizeDepth = 32

// RemoteBases returns the remote git bases (resources, bases, components
// entries that name another repository, see gitdeps.ParseRemoteBase) of
// the kustomization in dir and of every local kustomization it includes,
// sorted and deduplicated. A directory without a kustomization has none.
// Remote bases of remote bases are not followed here: the release side
// reads each remote base's own tree with RemoteBasesWithin. An entry that
// looks remote but is refused is an error.
func RemoteBases(dir string) ([]gitdeps.RemoteBase, error) {
	return RemoteBasesWithin(dir, "")
}

// RemoteBasesWithin is RemoteBases for a tree that came from elsewhere (a
// remote base's repository written under root): a local base that leads
// outside root, through ".." or a symbolic link, is an error. An empty
// root allows any local base.
func RemoteBasesWithin(dir, root string) ([]gitdeps.RemoteBase, error) {
	if root != "" {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			return nil, err
		}
		root = r
	}
	seen := map[string]bool{}
	found := map[gitdeps.RemoteBase]bool{}
	if err := remoteBases(dir, root, seen, found, 0); err != nil {
		return nil, err
	}
	out := make([]gitdeps.RemoteBase, 0, len(found))
	for rb := range found {
		out = append(out, rb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func remoteBases(dir, root string, seen map[string]bool, found map[gitdeps.RemoteBase]bool, depth int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if root != "" {
		if abs, err = filepath.EvalSymlinks(abs); err != nil {
			return err
		}
		if abs != root && !strings.HasPrefix(abs, root+string(filepath.Separator)) {
			return fmt.Errorf("%s: a local base leads outside the repository", dir)
		}
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
	if root != "" {
		real, err := filepath.EvalSymlinks(kfile)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(real, root+string(filepath.Separator)) {
			return fmt.Errorf("%s: a symbolic link that leads outside the repository", kfile)
		}
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
				if err := remoteBases(p, root, seen, found, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
