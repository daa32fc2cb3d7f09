package registry

import (
	"encoding/json"
	"net/http"
)

// isRead reports whether a request only reads. Pulls are anonymous.
func isRead(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// authenticate lets reads through anonymously and requires the write
// credentials (HTTP basic) for everything else. Reads that carry
// credentials are not checked: they are allowed either way.
func authenticate(creds Credentials, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isRead(r) {
			next.ServeHTTP(w, r)
			return
		}
		if fromWebPage(r) {
			// A browser attaches Basic credentials it has cached for this
			// origin to a cross-site "simple" POST: writes are for
			// registry clients, which send neither header.
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusForbidden, "DENIED", "writes from web pages are refused")
			return
		}
		u, p, ok := r.BasicAuth()
		if !ok || !creds.matches(u, p) {
			w.Header().Set("WWW-Authenticate", `Basic realm="ballast"`)
			// The body is never read: close the connection after the
			// answer, or net/http would drain the body first and a client
			// that stalls would hold the connection until the body deadline.
			w.Header().Set("Connection", "close")
			msg := "authentication required to write"
			if ok {
				msg = "bad credentials"
			}
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// fromWebPage reports a request a browser sent for a page of another
// origin: it carries Origin (registry clients never do), or Sec-Fetch-Site
// other than same-origin or none.
func fromWebPage(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return true
	}
	return r.Header.Get("Origin") != ""
}

// writeError answers in the OCI error format.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	type ociError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []ociError `json:"errors"`
	}{[]ociError{{code, msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(status)
	w.Write(body)
}
