package syncer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/datadir"
)

// maxDeployed bounds the revisions remembered per repository: the newest
// ones stay protected from retention, older ones go.
const maxDeployed = 10

// DeployedStore remembers the revisions verify --activate recorded as
// deployed, per repository, in <dataDir>/state/deployed.json. It survives a
// crash at any point: the file is replaced by rename after fsync.
type DeployedStore struct {
	path string
	mu   sync.Mutex
	data deployedFile
}

type deployedFile struct {
	Repos map[string]*deployedRepo `json:"repos"`
}

type deployedRepo struct {
	// Current is the revision activated last: its tags win.
	Current  string               `json:"current"`
	Deployed map[string]time.Time `json:"deployed"`
	// Tips are the tracked refs' tip revisions when Current was
	// activated: a revision that is not one of them arrived later, and
	// the moving refs of remote bases follow it (claimGitRefs).
	Tips []string `json:"tips,omitempty"`
}

// OpenDeployed loads the store of dataDir; a missing file is an empty store.
func OpenDeployed(dataDir string) (*DeployedStore, error) {
	s := &DeployedStore{path: datadir.Of(dataDir).Deployed(), data: deployedFile{Repos: map[string]*deployedRepo{}}}
	b, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deployed revisions: %w", err)
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("deployed revisions %s: %w", s.path, err)
	}
	if s.data.Repos == nil {
		s.data.Repos = map[string]*deployedRepo{}
	}
	for _, r := range s.data.Repos {
		if r == nil || r.Deployed == nil {
			return nil, fmt.Errorf("deployed revisions %s: malformed entry", s.path)
		}
	}
	return s, nil
}

// IsDeployed implements Deployed.
func (s *DeployedStore) IsDeployed(repoID, sha string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.data.Repos[repoID]
	if !ok {
		return false
	}
	_, ok = r.Deployed[sha]
	return ok
}

// Current returns the revision of repoID activated last, or "".
func (s *DeployedStore) Current(repoID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.data.Repos[repoID]; ok {
		return r.Current
	}
	return ""
}

// TipsAtActivation returns the tracked refs' tip revisions when the
// current revision of repoID was activated (nil when not recorded).
func (s *DeployedStore) TipsAtActivation(repoID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.data.Repos[repoID]; ok {
		return append([]string(nil), r.Tips...)
	}
	return nil
}

// Record marks sha as deployed and current for repoID, durably.
func (s *DeployedStore) Record(repoID, sha string) error {
	return s.RecordActivation(repoID, sha, nil)
}

// RecordActivation marks sha as deployed and current for repoID, with the
// tracked refs' tip revisions at that moment, durably (one write).
func (s *DeployedStore) RecordActivation(repoID, sha string, tips []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.data.Repos[repoID]
	if !ok {
		r = &deployedRepo{Deployed: map[string]time.Time{}}
		s.data.Repos[repoID] = r
	}
	r.Current = sha
	r.Tips = append([]string(nil), tips...)
	r.Deployed[sha] = time.Now().UTC()
	if len(r.Deployed) > maxDeployed {
		type ent struct {
			sha string
			at  time.Time
		}
		var es []ent
		for k, v := range r.Deployed {
			es = append(es, ent{k, v})
		}
		sort.Slice(es, func(i, j int) bool { return es[i].at.After(es[j].at) })
		for _, e := range es[maxDeployed:] {
			delete(r.Deployed, e.sha)
		}
	}
	b, err := json.MarshalIndent(s.data, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.path, b)
}

// writeAtomic replaces path with b so that a crash leaves the old or the
// new content (atomicfile.WriteFile), creating the directory first.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}
