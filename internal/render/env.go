package render

import (
	"os"
	"sort"
)

// buildEnv is Argo CD's build environment for one source: ARGOCD_APP_*
// variables derived from the Application, overridden by what the caller
// gives (notably ARGOCD_APP_REVISION, which only the checkout knows).
type buildEnv struct {
	vars    map[string]string
	missing []string
}

func newEnv(a Application, s AppSource, given map[string]string) *buildEnv {
	v := map[string]string{
		"ARGOCD_APP_NAME":                   a.Name,
		"ARGOCD_APP_NAMESPACE":              a.DestNamespace,
		"ARGOCD_APP_PROJECT_NAME":           a.Project,
		"ARGOCD_APP_SOURCE_REPO_URL":        s.RepoURL,
		"ARGOCD_APP_SOURCE_PATH":            s.Path,
		"ARGOCD_APP_SOURCE_TARGET_REVISION": s.TargetRevision,
	}
	for k, val := range given {
		v[k] = val
	}
	if rev, ok := v["ARGOCD_APP_REVISION"]; ok {
		if _, ok := given["ARGOCD_APP_REVISION_SHORT"]; !ok {
			v["ARGOCD_APP_REVISION_SHORT"] = shorten(rev, 7)
		}
		if _, ok := given["ARGOCD_APP_REVISION_SHORT_8"]; !ok {
			v["ARGOCD_APP_REVISION_SHORT_8"] = shorten(rev, 8)
		}
	}
	return &buildEnv{vars: v}
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// subst expands $VAR and ${VAR} as Argo CD does: unknown variables become
// empty and "$$" is a literal "$". Unknown names are remembered so the
// caller can warn: an empty revision in an image tag is rarely intended.
func (e *buildEnv) subst(s string) string {
	return os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		val, ok := e.vars[name]
		if !ok {
			e.noteMissing(name)
		}
		return val
	})
}

func (e *buildEnv) noteMissing(name string) {
	i := sort.SearchStrings(e.missing, name)
	if i < len(e.missing) && e.missing[i] == name {
		return
	}
	e.missing = append(e.missing, "")
	copy(e.missing[i+1:], e.missing[i:])
	e.missing[i] = name
}
