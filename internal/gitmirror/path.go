package gitmirror

import (
	"errors"
	"strings"
)

// service is what a smart-HTTP request asks for.
type service int

const (
	svcInfoRefs service = iota + 1
	svcUploadPack
	svcReceivePack
)

// maxRepoPath bounds the repository part of a request path.
const maxRepoPath = 512

var (
	errNotGitPath = errors.New("not a smart HTTP git path (want /git/<host>/<path>.git/info/refs or …/git-upload-pack)")
	errBadRepo    = errors.New("bad repository path")
)

// parseGitPath splits a request path "/git/<host>/<path>[.git]/<suffix>"
// into the repository id and the service. It only checks the syntax; the id
// is then looked up among the configured repositories, never joined onto a
// file system path.
func parseGitPath(p string) (string, service, error) {
	rest, ok := strings.CutPrefix(p, "/git/")
	if !ok {
		return "", 0, errNotGitPath
	}
	var svc service
	for suffix, s := range map[string]service{
		"/info/refs":        svcInfoRefs,
		"/git-upload-pack":  svcUploadPack,
		"/git-receive-pack": svcReceivePack,
	} {
		if r, ok := strings.CutSuffix(rest, suffix); ok {
			rest, svc = r, s
			break
		}
	}
	if svc == 0 {
		return "", 0, errNotGitPath
	}
	id, err := cleanRepoPath(rest)
	if err != nil {
		return "", 0, err
	}
	return id, svc, nil
}

// cleanRepoPath validates "<host>/<path>[.git]" and returns it without
// ".git". At least a host and one path segment; no empty, "." or ".."
// segments; no control characters or backslashes.
func cleanRepoPath(s string) (string, error) {
	s = strings.TrimSuffix(s, ".git")
	if s == "" || len(s) > maxRepoPath {
		return "", errBadRepo
	}
	segs := strings.Split(s, "/")
	if len(segs) < 2 {
		return "", errBadRepo
	}
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return "", errBadRepo
		}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", errBadRepo
		}
	}
	return s, nil
}
