package edge

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/units"
)

// The status page is rendered on the server only: its script refreshes by
// fetching the page again and swapping <main>, so there is one renderer
// (html/template, which escapes everything) and no second one in JS that
// could disagree with it or put upstream error text into innerHTML.

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"short":   shortSHA,
	"bytes":   humanBytes,
	"rate":    rateText,
	"eta":     humanDuration,
	"ago":     ago,
	"since":   func(t, now time.Time) string { return ago(&t, now) },
	"percent": percent,
	"stamp":   stamp,
	"when":    when,
}).ParseFS(pageFS, "page.html"))

// maxPageVerifications is how many verify results a repository shows.
const maxPageVerifications = 10

// pageData is what page.html draws: the status plus per-repository views.
type pageData struct {
	Status
	Nonce string
	Repos []repoPage
}

type repoPage struct {
	RepoView
	Link          string // "online", "offline" or "connecting"
	Verifications []Verification
}

// renderPage writes the status page for st. nonce authorizes the page's
// inline style and script under the Content-Security-Policy. With
// statusOnly it writes only the <main> element, which the page's script
// fetches to refresh itself.
func renderPage(w io.Writer, st Status, nonce string, statusOnly bool) error {
	data := pageData{Status: st, Nonce: nonce}
	for _, r := range st.Repos {
		p := repoPage{RepoView: r, Link: linkState(r)}
		for _, v := range st.Verifications { // newest first
			if len(p.Verifications) < maxPageVerifications && repoIDOf(v.Repo) == r.ID {
				p.Verifications = append(p.Verifications, v)
			}
		}
		data.Repos = append(data.Repos, p)
	}
	if statusOnly {
		return pageTmpl.ExecuteTemplate(w, "status", data)
	}
	return pageTmpl.Execute(w, data)
}

// linkState sums up the upstream link: offline after a failed contact,
// online after a good one, connecting before either.
func linkState(r RepoView) string {
	switch {
	case r.Failures > 0:
		return "offline"
	case r.LastSuccess != nil:
		return "online"
	default:
		return "connecting"
	}
}

func (d *Daemon) servePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails
	nonce := base64.RawStdEncoding.EncodeToString(raw[:])
	var buf bytes.Buffer
	if err := renderPage(&buf, d.Status(), nonce, r.URL.Query().Get("part") == "status"); err != nil {
		d.log.Error("edge: render status page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+
		"'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = buf.WriteTo(w)
}

// percent rounds down: "100%" only once the bundle is complete.
func percent(r syncer.RevisionStatus) string {
	return fmt.Sprintf("%d", int(math.Floor(r.Percent())))
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// humanBytes is the one byte formatter of the CLI and the demo.
var humanBytes = units.Bytes

// humanDuration prints whole seconds as "1h 2m", "2m 5s" or "40s".
func humanDuration(sec float64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
}

// ago prints t relative to now ("12s ago"), or "never" for nil.
func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	if d < time.Second {
		return "just now"
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	default:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	}
}

// stamp prints a time.Time or *time.Time for a datetime attribute.
func stamp(t any) string {
	switch t := t.(type) {
	case time.Time:
		return t.UTC().Format(time.RFC3339)
	case *time.Time:
		if t != nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return ""
}

// when prints a forecast or window time as "Tue 03:10 UTC" (with the date
// when it is more than six days away).
func when(t any) string {
	var v time.Time
	switch t := t.(type) {
	case time.Time:
		v = t
	case *time.Time:
		if t == nil {
			return ""
		}
		v = *t
	}
	v = v.UTC()
	if time.Until(v) > 6*24*time.Hour {
		return v.Format("Mon 2 Jan 15:04 MST")
	}
	return v.Format("Mon 15:04 MST")
}

// rateText prints bytes/s (float64 measured, int64 configured) as "1.2 MiB/s".
func rateText(bps any) string {
	var n int64
	switch v := bps.(type) {
	case float64:
		n = int64(v)
	case int64:
		n = v
	}
	return humanBytes(n) + "/s"
}
