package registry

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/ballast-dev/ballast/internal/imageref"
)

// The ns routing (DESIGN.md "Edge registry layout"). containerd pulling
// through a mirror keeps the repository path the upstream would see and adds
// the upstream registry as ?ns=<host[:port]>:
//
//	docker.io/library/nginx:1  →  GET /v2/library/nginx/manifests/1?ns=docker.io
//	127.0.0.1:5001/z:1         →  GET /v2/z/manifests/1?ns=127.0.0.1:5001
//
// so /v2/<name>/…?ns=<host> is served from repository <mapped host>/<name>,
// where the host is mapped by imageref.EdgeRegistryComponent. The prefix is
// added unconditionally, even when <name> already starts with the mapped
// host: containerd never sends the registry inside the name, and a
// "looks already prefixed" guess would make a real repository such as
// reg.example.com/reg.example.com/app unreachable and two names collide.
// Requests without ns are served as given, which is how ballast's own tools
// (sync, import, verify) address the full edge names.

// splitRepoPath splits the path of a repository-scoped API request
// "/v2/<name>/<route>" into name and route ("manifests/<ref>",
// "blobs/<digest>", "blobs/uploads/[<id>]", "tags/list",
// "referrers/<digest>"). The route is recognised from the right, as its
// shape is fixed, so a name with a component such as "blobs" still splits
// right. ok is false for /v2/, /v2/_catalog and anything else.
func splitRepoPath(p string) (name, route string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", false
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	cut := -1 // index of the first route segment
	switch {
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		cut = n - 3 // blobs/uploads/<id>, or blobs/uploads/ (empty id)
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		cut = n - 2 // blobs/uploads without the trailing slash
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		cut = n - 2
	case n >= 3 && (segs[n-2] == "manifests" || segs[n-2] == "blobs" || segs[n-2] == "referrers") && segs[n-1] != "":
		cut = n - 2
	}
	if cut < 1 {
		return "", "", false
	}
	for _, s := range segs[:cut] {
		if s == "" {
			return "", "", false
		}
	}
	return strings.Join(segs[:cut], "/"), strings.Join(segs[cut:], "/"), true
}

// nsPrefix validates an ns value and returns the repository prefix it maps
// to ("docker.io", "127.0.0.1_5000").
func nsPrefix(ns string) (string, error) {
	if ns == "" || len(ns) > 255 || strings.ContainsAny(ns, "/@ ") {
		return "", fmt.Errorf("ns %q is not a registry host[:port]", ns)
	}
	p := imageref.EdgeRegistryComponent(ns)
	if !validComponent(p) {
		return "", fmt.Errorf("ns %q is not a registry host[:port]", ns)
	}
	return p, nil
}

// pathComponent is the OCI grammar of one repository path component.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// routeComponent is what a tag, a digest or an upload id can hold.
var routeComponent = regexp.MustCompile(`^[A-Za-z0-9_.:=+-]*$`)

func validComponent(s string) bool { return pathComponent.MatchString(s) }

// nsRouter rewrites ns requests onto the mapped repository and rewrites the
// URLs in the response (Location, Link) back, with ns kept, so a client that
// follows them stays on the same routing.
type nsRouter struct{ next http.Handler }

func (h nsRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("ns") {
		h.next.ServeHTTP(w, r)
		return
	}
	ns := q.Get("ns")
	name, route, ok := splitRepoPath(r.URL.Path)
	if !ok {
		// /v2/ and /v2/_catalog are registry-wide: ns does not apply, and
		// the catalog lists the real (mapped) repository names.
		h.next.ServeHTTP(w, r)
		return
	}
	prefix, err := nsPrefix(ns)
	if err != nil {
		writeError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
		return
	}
	// Only valid names are rewritten: anything else would reach
	// Distribution (and come back in Location headers) half-mapped.
	for _, c := range strings.Split(name, "/") {
		if !validComponent(c) {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("repository name %q is invalid", name))
			return
		}
	}
	for _, c := range strings.Split(route, "/") {
		if !routeComponent.MatchString(c) {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("request path %q is invalid", route))
			return
		}
	}
	q.Del("ns")
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/v2/" + prefix + "/" + name + "/" + route
	r2.URL.RawPath = ""
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	h.next.ServeHTTP(&nsResponseWriter{ResponseWriter: w, prefix: "/v2/" + prefix + "/", ns: ns}, r2)
}

// nsResponseWriter rewrites Location and Link headers that point into the
// mapped repository back to the client's view (/v2/<name>/…?ns=<host>).
type nsResponseWriter struct {
	http.ResponseWriter
	prefix      string // "/v2/<mapped host>/"
	ns          string
	wroteHeader bool
}

func (w *nsResponseWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		hdr := w.Header()
		if loc := hdr.Get("Location"); loc != "" {
			hdr.Set("Location", w.unmap(loc))
		}
		if links := hdr.Values("Link"); len(links) > 0 {
			hdr.Del("Link")
			for _, l := range links {
				// RFC 8288: <url>; rel="next"
				if strings.HasPrefix(l, "<") {
					if end := strings.Index(l, ">"); end > 0 {
						l = "<" + w.unmap(l[1:end]) + l[end:]
					}
				}
				hdr.Add("Link", l)
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *nsResponseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *nsResponseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *nsResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unmap turns a URL (absolute or path-only) into the mapped repository back
// into the ns form; other URLs pass unchanged.
func (w *nsResponseWriter) unmap(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(u.Path, w.prefix) {
		return raw
	}
	u.Path = "/v2/" + strings.TrimPrefix(u.Path, w.prefix)
	u.RawPath = ""
	q := u.Query()
	q.Set("ns", w.ns)
	u.RawQuery = q.Encode()
	return u.String()
}
