package fleet

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Short is a revision's first 12 hex digits.
func Short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// FormatAge writes a duration as "45s", "12m", "3h05m", "2d04h".
func FormatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}

// row is one line of the table: a site's repository, or the site alone.
type row struct {
	Site, State, Age, Repo, Ready, Deployed, Pending, Note string
}

func (f *Fleet) rows() []row {
	var out []row
	for _, s := range f.Sites {
		age := "-"
		if s.PublishedAt != nil {
			age = FormatAge(s.Age())
		}
		base := row{Site: s.Site, State: strings.ToUpper(s.State), Age: age}
		switch s.State {
		case StateError, StateUntrusted:
			base.Note = s.Error
			out = append(out, base)
			continue
		case StateUnknown:
			base.Note = fmt.Sprintf("no report for %s (threshold %s): nothing is claimed", FormatAge(s.Age()), FormatAge(f.Stale))
			out = append(out, base)
			continue
		}
		d := s.Document
		if len(d.Repos) == 0 {
			base.Note = "no repositories"
			out = append(out, base)
		}
		for _, r := range d.Repos {
			x := base
			x.Repo = r.ID
			x.Ready = readyText(r)
			x.Deployed = Short(r.Deployed)
			x.Pending = pendingText(r.Pending)
			notes := append(append([]string{}, d.Errors...), r.Errors...)
			if b := d.Budget; b != nil {
				notes = append(notes, budgetText(*b))
			}
			x.Note = strings.Join(notes, "; ")
			out = append(out, x)
		}
	}
	return out
}

// budgetText is "budget day 2026-12-04: 120 MB of 500 MB used".
func budgetText(b Budget) string {
	mb := func(n int64) string { return fmt.Sprintf("%d MB", n/1_000_000) }
	s := "budget " + b.Period + ": " + mb(b.UsedBytes)
	if b.LimitBytes > 0 {
		s += " of " + mb(b.LimitBytes)
	}
	return s + " used"
}

func readyText(r Repo) string {
	var parts []string
	for _, t := range r.Tracked {
		ref := strings.TrimPrefix(strings.TrimPrefix(t.Name, "refs/heads/"), "refs/tags/")
		rev := Short(t.Ready)
		if rev == "" {
			rev = "none"
		}
		parts = append(parts, ref+"="+rev)
	}
	if n := len(r.Ready); n > 0 {
		parts = append(parts, fmt.Sprintf("(%d ready)", n))
	}
	return strings.Join(parts, " ")
}

func pendingText(ps []Pending) string {
	var parts []string
	for _, p := range ps {
		s := fmt.Sprintf("%s %s %d%%", Short(p.Revision), p.State, p.Percent)
		if p.ETAMinutes > 0 {
			s += " eta " + FormatAge(time.Duration(p.ETAMinutes)*time.Minute)
		}
		if t, err := time.Parse(time.RFC3339, p.CompleteBy); err == nil {
			s += " by " + t.UTC().Format("Mon 02 Jan 15:04 UTC")
		} else if t, err := time.Parse(time.RFC3339, p.SizeKnownAt); err == nil {
			s += " size unknown until " + t.UTC().Format("Mon 02 Jan 15:04 UTC")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// WriteText writes the fleet as an aligned table.
//
// A last line says whether the documents were verified: "documents
// verified: …" or "documents NOT verified (no --key): …".
func (f *Fleet) WriteText(w io.Writer) error {
	defer fmt.Fprintln(w, f.VerifiedText())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tSTATE\tAGE\tREPOSITORY\tREADY\tDEPLOYED\tPENDING\tNOTE")
	for _, r := range f.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, r.State, r.Age, dash(r.Repo), dash(r.Ready),
			dash(r.Deployed), dash(r.Pending), dash(r.Note))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// VerifiedText says whether and how the documents were verified.
func (f *Fleet) VerifiedText() string {
	if !f.Verified {
		return "documents NOT verified (no --key): what each site says is shown as published, signed or not"
	}
	return "documents verified: each shown site's latest document is signed by a trusted key (" + f.Keys + ")"
}

// Counts returns how many sites are in each state (untrusted ones count
// as bad).
func (f *Fleet) Counts() (current, unknown, bad int) {
	for _, s := range f.Sites {
		switch s.State {
		case StateCurrent:
			current++
		case StateUnknown:
			unknown++
		default:
			bad++
		}
	}
	return
}

var page = template.Must(template.New("fleet").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ballast fleet</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td:first-child,td:nth-child(3){white-space:nowrap}code{font:12px ui-monospace,monospace}
.state{font-weight:600}.current .state{color:#17692e}.unknown .state{color:#8a5a00}.error .state{color:#a4161a}
.untrusted .state{color:#a4161a}.unknown td,.error td,.untrusted td{background:#fff8e6}.unverified{color:#a4161a;font-weight:600}.scroll{overflow-x:auto}.note{color:#555}
</style></head><body>
<h1>ballast fleet</h1>
<p id="summary">{{.Current}} current, {{.Unknown}} unknown, {{.Bad}} unreadable or untrusted · read {{.ReadAt}} from <code>{{.Repository}}</code> · a site silent for more than {{.Stale}} is UNKNOWN</p>
<p id="verification"{{if not .Verified}} class="unverified"{{end}}>{{.VerifiedText}}</p>
<div class="scroll"><table id="fleet"><thead><tr><th>site</th><th>state</th><th>age</th><th>repository</th><th>ready</th><th>deployed</th><th>pending</th><th>note</th></tr></thead><tbody>
{{range .Rows}}<tr class="{{.Class}}" data-site="{{.Site}}" data-state="{{.Class}}"><td>{{.Site}}</td><td class="state">{{.State}}</td><td>{{.Age}}</td><td>{{.Repo}}</td><td class="ready"><code>{{.Ready}}</code></td><td class="deployed"><code>{{.Deployed}}</code></td><td class="pending">{{.Pending}}</td><td class="note">{{.Note}}</td></tr>
{{end}}</tbody></table></div>
</body></html>
`))

// WriteHTML writes the fleet as one static, self-contained HTML page (no
// scripts, no external resources). Every text from a document is escaped.
func (f *Fleet) WriteHTML(w io.Writer) error {
	type hrow struct {
		row
		Class string
	}
	var rows []hrow
	for _, r := range f.rows() {
		rows = append(rows, hrow{r, strings.ToLower(r.State)})
	}
	c, u, b := f.Counts()
	return page.Execute(w, map[string]any{
		"Current": c, "Unknown": u, "Bad": b, "ReadAt": f.ReadAt.Format(time.RFC3339),
		"Repository": f.Repository, "Stale": FormatAge(f.Stale), "Rows": rows,
		"Verified": f.Verified, "VerifiedText": f.VerifiedText(),
	})
}
