package lfs

// RepoServerGitConfig is the git config (system or global level) Argo CD's
// repo-server needs for LFS repositories, what `git lfs install --system`
// writes: Argo CD v3.2.11 runs `git lfs fetch --all` after each fetch, then
// `git lfs checkout`, which skips every file ("Git LFS is not installed")
// without git-lfs's filters configured.
const RepoServerGitConfig = `[filter "lfs"]
	clean = git-lfs clean -- %f
	smudge = git-lfs smudge -- %f
	process = git-lfs filter-process
	required = true
`
