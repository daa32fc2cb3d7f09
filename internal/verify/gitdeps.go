package verify

import (
	"context"
	"fmt"
	"net/http"
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
