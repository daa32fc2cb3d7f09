package lfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/slots"
)

// Wrap serves the LFS API of the mirrored repositories and passes every
// other request to next (the git mirror's handler):
//
//	POST /git/<host>/<path>[.git]/info/lfs/objects/batch     batch API, download only
//	GET  /git/<host>/<path>[.git]/info/lfs/objects/<oid>     object content (Range allowed)
//
// Reads are anonymous, like the mirror's git reads. Upload batches, object
// PUTs and lock requests get 403: the mirror is read-only. Only objects on
// site for that repository are offered; others get a per-object 404 error.
func (m *Mirror) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		repoPath, rest, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/git/"), "/info/lfs/")
		if !ok || !strings.HasPrefix(req.URL.Path, "/git/") {
			next.ServeHTTP(w, req)
			return
		}
		m.serveLFS(w, req, strings.TrimSuffix(repoPath, ".git"), rest)
	})
}

func (m *Mirror) serveLFS(w http.ResponseWriter, req *http.Request, id, rest string) {
	r := m.repoOf(id)
	if r == nil || strings.Contains(id, "..") || strings.Contains(id, "://") {
		lfsError(w, http.StatusNotFound, "repository not mirrored here: only configured repositories and their dependencies are served")
		return
	}
	switch {
	case rest == "objects/batch":
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			lfsError(w, http.StatusMethodNotAllowed, "the batch API takes POST")
			return
		}
		m.serveBatch(w, req, r)
	case strings.HasPrefix(rest, "objects/") && IsOID(strings.TrimPrefix(rest, "objects/")):
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			m.serveObject(w, req, r, strings.TrimPrefix(rest, "objects/"))
		case http.MethodPut, http.MethodPost:
			lfsError(w, http.StatusForbidden, "this mirror is read-only: push LFS objects to the upstream")
		default:
			w.Header().Set("Allow", "GET, HEAD")
			lfsError(w, http.StatusMethodNotAllowed, "objects take GET")
		}
	case rest == "locks" || strings.HasPrefix(rest, "locks/"):
		lfsError(w, http.StatusForbidden, "this mirror is read-only: LFS locks live on the upstream")
	default:
		lfsError(w, http.StatusNotFound, "not an LFS API path this mirror serves")
	}
}

func (m *Mirror) serveBatch(w http.ResponseWriter, req *http.Request, r *repoState) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBatchBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			w.Header().Set("Connection", "close")
			lfsError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("batch request over %d bytes", MaxBatchBody))
			return
		}
		lfsError(w, http.StatusBadRequest, "read batch request: "+err.Error())
		return
	}
	br, err := ParseBatchRequest(body)
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		lfsError(w, http.StatusUnprocessableEntity, err.Error())
		return
	case err != nil:
		lfsError(w, http.StatusBadRequest, err.Error())
		return
	}
	if br.Operation != "download" {
		lfsError(w, http.StatusForbidden, "this mirror is read-only: push LFS objects to the upstream")
		return
	}
	// The hrefs repeat the request's Host once per object: a Host of up to
	// net/http's 1 MiB header limit times MaxBatchObjects would build a
	// response of a GiB in memory. A DNS name is at most 253 bytes.
	if len(req.Host) > maxHost {
		w.Header().Set("Connection", "close")
		lfsError(w, http.StatusBadRequest, fmt.Sprintf("Host header over %d bytes", maxHost))
		return
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + req.Host + "/git/" + r.id + ".git/info/lfs/objects/"
	resp := BatchResponse{Transfer: "basic", HashAlgo: "sha256", Objects: make([]BatchObject, 0, len(br.Objects))}
	for _, p := range br.Objects {
		o := BatchObject{OID: p.OID, Size: p.Size}
		if r.st.has(p) {
			o.Authenticated = true // anonymous reads: git-lfs must not ask for credentials
			o.Actions = map[string]*Action{"download": {Href: base + p.OID}}
		} else {
			o.Error = &ObjectError{Code: http.StatusNotFound,
				Message: "object not on this mirror: not in a tracked or kept revision, or not fetched from the upstream yet"}
		}
		resp.Objects = append(resp.Objects, o)
	}
	w.Header().Set("Content-Type", MediaType)
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(resp)
}

func (m *Mirror) serveObject(w http.ResponseWriter, req *http.Request, r *repoState, oid string) {
	r.mu.Lock()
	size, ok := r.have[oid]
	r.mu.Unlock()
	if !ok {
		lfsError(w, http.StatusNotFound, "object not on this mirror")
		return
	}
	// Clients that stop reading hold a slot until the daemon's write
	// deadline cuts them; the others wait a bounded time, then retry
	// (git-lfs retries 503 with Retry-After), instead of piling up.
	release, err := m.downloads.Acquire(req.Context(), m.o.SlotWait)
	if errors.Is(err, slots.ErrBusy) {
		w.Header().Set("Retry-After", "10")
		lfsError(w, http.StatusServiceUnavailable, "too many LFS downloads at once: retry later")
		return
	}
	if err != nil {
		return // the client left
	}
	defer release()
	f, err := r.st.open(Pointer{OID: oid, Size: size})
	if err != nil {
		lfsError(w, http.StatusNotFound, "object not on this mirror")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+oid+`"`)
	// Objects never change: their name is their sha256.
	http.ServeContent(w, req, "", time.Time{}, f)
}

// maxHost bounds the Host header the batch API puts into its hrefs: a DNS
// name (253), a port, brackets of an IPv6 literal.
const maxHost = 270

// lfsError answers with the LFS API's error body {"message": …}.
func lfsError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", MediaType)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// APIHandler serves the JSON API:
//
//	GET /api/v1/lfs                                   every repository's LFS state
//	GET /api/v1/lfs/<host>/<path>/commits/<sha>       RevisionReport of one commit
//
// A commit that is not in the mirror, or an unknown repository, is 404;
// a SHA that is not 40 or 64 hex digits is 400.
func (m *Mirror) APIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			jsonError(w, http.StatusMethodNotAllowed, "read-only API")
			return
		}
		rest := strings.Trim(strings.TrimPrefix(req.URL.Path, "/api/v1/lfs"), "/")
		if rest == "" {
			writeJSON(w, http.StatusOK, m.Status())
			return
		}
		id, sha, ok := strings.Cut(rest, "/commits/")
		if !ok {
			jsonError(w, http.StatusNotFound, "want /api/v1/lfs/<host>/<path>/commits/<sha>")
			return
		}
		sha = strings.ToLower(sha)
		if (len(sha) != 40 && len(sha) != 64) || strings.Trim(sha, "0123456789abcdef") != "" {
			jsonError(w, http.StatusBadRequest, "commit: want a full hex object name")
			return
		}
		if m.repoOf(id) == nil {
			// A dependency repository the mirror added since the last
			// scheduled pass.
			m.refreshDeps()
		}
		if m.repoOf(id) == nil {
			jsonError(w, http.StatusNotFound, "repository not configured")
			return
		}
		if _, err := m.o.Git.RunGit(req.Context(), id, false, nil, "cat-file", "-e", sha+"^{commit}"); err != nil {
			if req.Context().Err() != nil {
				return
			}
			jsonError(w, http.StatusNotFound, "commit not in the git mirror")
			return
		}
		rep, err := m.Revision(req.Context(), id, sha)
		if err != nil {
			jsonError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
