package gitmirror

// SetFetchStartedHook lets tests see (and kill) every upstream fetch.
func SetFetchStartedHook(m *Mirror, f func(pid int)) { m.testHookFetchStarted = f }

// RepoDir is where the repository is kept on disk.
func RepoDir(m *Mirror, id string) string {
	r, err := m.lookup(id)
	if err != nil {
		panic(err)
	}
	return r.dir
}
