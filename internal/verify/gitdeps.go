package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/gitdeps"
)

// maxNamedGitDeps bounds the git dependencies a reason names.
const maxNamedGitDeps = 5

// gitDepsMissing asks the mirror for every git dependency the bundle
// records (submodule commits, remote base commits) and returns those it
// does not hold, named as "submodule vendor/lib: <url> at <sha12>". An
// error means the mirror could not be asked.
func (v *verifier) gitDepsMissing(ctx context.Context, b *bundle.Bundle) ([]string, error) {
	var missing []string
	for _, d := range b.GitDeps {
		id, err := gitdeps.ID(d.URL)
		if err != nil {
			return nil, err
		}
		code, err := v.get(ctx, "/api/v1/repos/"+id+"/commits/"+d.Commit, nil)
		if err != nil {
			return nil, err
		}
		switch code {
		case http.StatusOK:
			continue
		case http.StatusNotFound:
			missing = append(missing, describeGitDep(d))
		default:
			return nil, fmt.Errorf("commit lookup for %s answered HTTP %d", id, code)
		}
	}
	return missing, nil
}

func describeGitDep(d bundle.GitDep) string {
	what := "submodule " + d.Path
	if d.Kind == bundle.GitDepRemoteBase {
		what = "remote base " + d.URL + "//" + d.Path
		if d.Ref != "" && d.Ref != d.Commit {
			what += "?ref=" + d.Ref
		}
		return what + " at " + short(d.Commit)
	}
	return what + ": " + d.URL + " at " + short(d.Commit)
}

func gitDepsReason(missing []string) string {
	named := missing
	more := ""
	if len(named) > maxNamedGitDeps {
		named, more = named[:maxNamedGitDeps], fmt.Sprintf(" and %d more", len(missing)-maxNamedGitDeps)
	}
	return fmt.Sprintf("%d git dependencies not in the mirror yet: %s%s", len(missing), strings.Join(named, "; "), more)
}

// depRef is the mirror's GET /api/v1/gitdeps/ref answer
// (gitmirror.DepRef).
type depRef struct {
	Name       string `json:"name"`
	Commit     string `json:"commit"`
	Configured bool   `json:"configured"`
	Error      string `json:"error"`
}

// gitRefsMoved checks every moving ref (a branch or tag a remote base
// names, `?ref=main`) of the revision: a client fetching it from the
// mirror must get the commit the bundle recorded, or kustomize renders
// another base than the one the bundle was made (and its images found)
// for. It returns one line per ref that is not, naming the base and both
// commits. An edge that predates the route (a bare 404) is not asked.
func (v *verifier) gitRefsMoved(ctx context.Context, b *bundle.Bundle) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, d := range b.GitDeps {
		if d.Kind != bundle.GitDepRemoteBase || d.Ref == "" || d.Ref == d.Commit {
			continue
		}
		id, err := gitdeps.ID(d.URL)
		if err != nil {
			return nil, err
		}
		if seen[strings.ToLower(id)+"?ref="+d.Ref] {
			continue
		}
		seen[strings.ToLower(id)+"?ref="+d.Ref] = true
		var r depRef
		q := url.Values{"repo": {id}, "ref": {d.Ref}}
		code, err := v.get(ctx, "/api/v1/gitdeps/ref?"+q.Encode(), &r)
		if err != nil {
			return nil, err
		}
		base := "remote base " + d.URL + "//" + d.Path + "?ref=" + d.Ref
		switch {
		case code == http.StatusNotFound && r.Error == "":
			return nil, nil
		case code == http.StatusNotFound:
			out = append(out, fmt.Sprintf("%s: %s", base, r.Error))
		case code != http.StatusOK:
			return nil, fmt.Errorf("ref lookup for %s answered HTTP %d", id, code)
		case r.Name == "":
			out = append(out, fmt.Sprintf("%s: the mirror does not advertise %s (this revision recorded %s)", base, d.Ref, short(d.Commit)))
		case r.Commit != d.Commit:
			s := fmt.Sprintf("%s: the mirror advertises %s at %s, this revision recorded %s", base, d.Ref, short(r.Commit), short(d.Commit))
			if r.Configured {
				s += " (a configured repository follows its upstream: pin the base by commit)"
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func gitRefsReason(rev string, moved []string, activated bool) string {
	named := moved
	more := ""
	if len(named) > maxNamedGitDeps {
		named, more = named[:maxNamedGitDeps], fmt.Sprintf(" and %d more", len(moved)-maxNamedGitDeps)
	}
	s := fmt.Sprintf("%d remote base ref(s) of revision %s point elsewhere in the mirror: %s%s", len(moved), short(rev), strings.Join(named, "; "), more)
	if !activated {
		s += " (verify --activate re-points them for this revision)"
	}
	return s
}
