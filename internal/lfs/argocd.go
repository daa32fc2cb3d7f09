package lfs

// RepoServerGitConfig is the git config (system or global level) Argo CD's
// repo-server needs to read LFS files from the mirror. Argo CD v3.2.11 runs
// every git command with GIT_LFS_SKIP_SMUDGE=1 and fetches LFS objects
// (`git lfs fetch --all`) only when `git lfs ls-files` lists files before
// the checkout, which it never does on the first fetch of a repository: the
// checked-out files would stay pointer text. Filters that drop
// GIT_LFS_SKIP_SMUDGE make the checkout itself download the objects (from
// the mirror: the repository's URL is the mirror's).
const RepoServerGitConfig = `[filter "lfs"]
	clean = git-lfs clean -- %f
	smudge = env -u GIT_LFS_SKIP_SMUDGE git-lfs smudge -- %f
	process = env -u GIT_LFS_SKIP_SMUDGE git-lfs filter-process
	required = true
`
