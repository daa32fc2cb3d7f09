package verify

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/ballast-dev/ballast/internal/bundle"
)

// LFSMissing is an LFS object a revision needs that is not on site
// (lfs.Missing as the mirror's API reports it).
type LFSMissing struct {
	OID    string `json:"oid"`
	Size   int64  `json:"size"`
	Path   string `json:"path"`
	Reason string `json:"reason,omitempty"`
}

// LFSMalformed is a file of the revision that claims to be an LFS pointer
// but is not a valid one.
type LFSMalformed struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// lfsReport is the mirror's GET /api/v1/lfs/<id>/commits/<sha> answer.
type lfsReport struct {
	Objects   int            `json:"objects"`
	Complete  bool           `json:"complete"`
	Missing   []LFSMissing   `json:"missing"`
	Malformed []LFSMalformed `json:"malformed"`
	// HistoryMissing: objects of other revisions the mirror serves, not on
	// site; Argo CD's `git lfs fetch --all` fails on them.
	HistoryMissing []LFSMissing `json:"historyMissing"`
	Error          string       `json:"error"`
}

// checkLFS asks the mirror whether every LFS object of the revision is on
// site. It returns the reason the revision is not ready ("" when it is, or
// when the edge predates LFS support and answers the route with a bare 404).
func (v *verifier) checkLFS(ctx context.Context, res *Result) (string, error) {
	var rep lfsReport
	code, err := v.get(ctx, "/api/v1/lfs/"+v.id+"/commits/"+v.o.Revision, &rep)
	if err != nil {
		return "", err
	}
	switch {
	case code == http.StatusNotFound && rep.Error == "":
		return "", nil
	case code == http.StatusNotFound:
		return "LFS objects: " + rep.Error, nil
	case code != http.StatusOK:
		return "", fmt.Errorf("LFS report: HTTP %d", code)
	}
	res.LFSObjects, res.LFSMissing, res.LFSMalformed = rep.Objects, rep.Missing, rep.Malformed
	if rep.Complete {
		return "", nil
	}
	var parts []string
	const show = 5
	describe := func(ms []LFSMissing, what string) {
		for i, m := range ms {
			if i == show {
				parts = append(parts, fmt.Sprintf("and %d more", len(ms)-show))
				break
			}
			s := fmt.Sprintf("%s%s (sha256:%s, %d bytes)", what, m.Path, m.OID, m.Size)
			if m.Reason != "" {
				s += ": " + m.Reason
			}
			parts = append(parts, s)
		}
	}
	describe(rep.Missing, "")
	for _, m := range rep.Malformed {
		parts = append(parts, fmt.Sprintf("%s: malformed LFS pointer: %s", m.Path, m.Error))
	}
	describe(rep.HistoryMissing, "other revision's ")
	res.LFSMissing = append(res.LFSMissing, rep.HistoryMissing...)
	return fmt.Sprintf("LFS objects of revision %s not all on site (%d of its %d missing, %d malformed pointer(s), "+
		"%d of other revisions missing, which Argo CD's git lfs fetch --all needs too): %s",
		short(v.o.Revision), len(rep.Missing), rep.Objects, len(rep.Malformed), len(rep.HistoryMissing), strings.Join(parts, "; ")), nil
}

// depsLFSMissing checks the LFS objects of every git dependency of the
// bundle (a submodule's or remote base's commit) as checkLFS does the
// revision's own: each object the commit's tree points at must be on site
// and no pointer malformed. It returns one line per object (or malformed
// pointer) that is not. A dependency the edge keeps no LFS store for (an
// edge that predates it) is not asked.
func (v *verifier) depsLFSMissing(ctx context.Context, b *bundle.Bundle) ([]string, []LFSMissing, error) {
	var lines []string
	var missing []LFSMissing
	commits, err := bundle.DistinctCommits(b.GitDeps)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range commits {
		id, d := c.ID, c.Dep
		var rep lfsReport
		code, err := v.get(ctx, "/api/v1/lfs/"+id+"/commits/"+d.Commit, &rep)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case code == http.StatusNotFound:
			continue // no LFS store for it, or the commit is not here (gitDepsMissing names that)
		case code != http.StatusOK:
			return nil, nil, fmt.Errorf("LFS report of %s: HTTP %d", id, code)
		}
		what := describeGitDep(d)
		for _, m := range rep.Missing {
			s := fmt.Sprintf("%s: %s (sha256:%s, %d bytes)", what, m.Path, m.OID, m.Size)
			if m.Reason != "" {
				s += ": " + m.Reason
			}
			lines = append(lines, s)
			missing = append(missing, m)
		}
		for _, m := range rep.Malformed {
			lines = append(lines, fmt.Sprintf("%s: %s: malformed LFS pointer: %s", what, m.Path, m.Error))
		}
	}
	return lines, missing, nil
}

func depsLFSReason(lines []string) string {
	named := lines
	more := ""
	if len(named) > maxNamedGitDeps {
		named, more = named[:maxNamedGitDeps], fmt.Sprintf(" and %d more", len(lines)-maxNamedGitDeps)
	}
	return fmt.Sprintf("LFS objects of git dependencies not all on site (%d): %s%s", len(lines), strings.Join(named, "; "), more)
}
