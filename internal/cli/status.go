package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/fleet"
	"github.com/ballast-dev/ballast/internal/units"
)

// maxStatusBytes bounds the daemon's status document the CLI reads.
const maxStatusBytes = 16 << 20

func newStatusCmd(e *env) *cobra.Command {
	var edgeURL, cfgPath, output string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what the running edge daemon has on site, what it is fetching and when it will be done",
		Long: `status reads the running edge daemon's status (GET /api/v1/status, the
document the status page draws; no credential needed) and prints, per
repository, each tracked ref's upstream tip and ready revision, and each
wanted revision's state, progress and forecast ("complete by"), after the
link: window, bandwidth cap, measured rate, and what is left of each budget
period. Exit 1 when the daemon cannot be reached or answers with an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			base, _, err := edgeBase(edgeURL, cfgPath, "status")
			if err != nil {
				return err
			}
			raw, err := fetchStatus(cmd.Context(), base)
			if err != nil {
				return exitcode.Fail(err)
			}
			if output == "json" {
				_, err := e.stdout.Write(raw)
				return err
			}
			if err := renderStatus(e.stdout, base, raw); err != nil {
				return exitcode.Fail(err)
			}
			return nil
		},
	}
	f := c.Flags()
	pathVar(f, &cfgPath, "config", "", "edge config file (the daemon's address from listen.http)")
	f.StringVar(&edgeURL, "edge", "", "edge daemon HTTP base URL (default from --config)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json (the daemon's document as it is)")
	return c
}

// fetchStatus reads the daemon's status document at base.
func fetchStatus(ctx context.Context, base string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/status", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("edge daemon at %s: %w", base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes+1))
	if err != nil {
		return nil, fmt.Errorf("edge daemon at %s: read status: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("edge daemon at %s: GET /api/v1/status: %s: %s", base, resp.Status, oneLine(firstLine(raw)))
	}
	if len(raw) > maxStatusBytes {
		return nil, fmt.Errorf("edge daemon at %s: status document over %d bytes", base, maxStatusBytes)
	}
	return raw, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// renderStatus prints the daemon's status document raw (edge.Status as
// JSON, from base) for people. A document that does not parse is an error
// naming where it came from; nothing is printed then.
func renderStatus(w io.Writer, base string, raw []byte) error {
	var st edge.Status
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("edge daemon at %s: status document: %w", base, err)
	}
	if dec.More() {
		return fmt.Errorf("edge daemon at %s: status document: data after the JSON object", base)
	}
	var b strings.Builder
	now := st.Now
	if now.IsZero() {
		now = time.Now()
	}
	fmt.Fprintf(&b, "edge %s (ballast %s) at %s\n", base, oneLine(st.Version), stamp(now))
	b.WriteString("link: " + linkLine(st, now) + "\n")
	for _, u := range st.Link.Budget {
		fmt.Fprintf(&b, "budget per %s: %s left of %s, resets %s\n", oneLine(string(u.Period)), units.Bytes(max(u.Left, 0)), units.Bytes(max(u.Limit, 0)), stamp(u.ResetsAt))
	}
	if st.Link.Stopped != "" {
		b.WriteString("sync waits: " + oneLine(st.Link.Stopped) + "\n")
	}
	for _, r := range st.Repos {
		b.WriteString("\n" + oneLine(r.ID))
		if r.URL != "" {
			b.WriteString("  " + oneLine(r.URL))
		}
		b.WriteString("\n")
		if r.LastError != "" {
			fmt.Fprintf(&b, "  git: %s (%s in a row)\n", oneLine(r.LastError), plural(r.Failures, "failure"))
		}
		for _, t := range r.Tracked {
			ready := "nothing ready"
			if t.Ready != "" {
				ready = "ready " + short12(t.Ready)
				if t.Gated {
					ready = "advertised " + short12(t.Ready)
				}
			} else if t.Gated {
				ready = "not advertised yet"
			}
			fmt.Fprintf(&b, "  %s: upstream %s, %s\n", oneLine(t.Name), short12(t.UpstreamTip), ready)
		}
		for _, rv := range r.Revisions {
			fmt.Fprintf(&b, "  %-12s  %-9s %s\n", short12(rv.Revision), oneLine(rv.State), revisionLine(rv))
		}
		if r.SyncError != "" {
			b.WriteString("  sync: " + oneLine(r.SyncError) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// linkLine says whether sync may use the link now and until when.
func linkLine(st edge.Status, now time.Time) string {
	l := st.Link
	var s string
	switch {
	case l.Always:
		s = "open (no windows)"
	case l.Open:
		s = "open"
		if l.Until != nil {
			s += " until " + stamp(*l.Until)
		}
	default:
		s = "closed"
		if l.NextWindow != nil {
			s += ", next window " + stamp(*l.NextWindow) + " (in " + roundDur(l.NextWindow.Sub(now)) + ")"
		}
	}
	if l.RateCap > 0 {
		s += fmt.Sprintf(", cap %s/s", units.Bytes(l.RateCap))
	}
	if l.MeasuredRate > 0 {
		s += fmt.Sprintf(", measured %s/s", units.Bytes(int64(l.MeasuredRate)))
	}
	if l.SyncNowPending {
		s += ", sync now pending"
	}
	return s
}

// revisionLine is a revision's progress and forecast.
func revisionLine(rv edge.RevisionView) string {
	var parts []string
	switch {
	case rv.BytesTotal > 0 && rv.BytesDone < rv.BytesTotal:
		parts = append(parts, fmt.Sprintf("%s of %s", units.Bytes(max(rv.BytesDone, 0)), units.Bytes(rv.BytesTotal)))
	case rv.BytesTotal > 0:
		parts = append(parts, units.Bytes(rv.BytesTotal))
	}
	if rv.Rate > 0 {
		parts = append(parts, fmt.Sprintf("at %s/s", units.Bytes(int64(rv.Rate))))
	}
	if rv.Priority != "" && rv.Queue > 0 && rv.State != "complete" {
		parts = append(parts, fmt.Sprintf("#%d in the queue (%s)", rv.Queue, oneLine(rv.Priority)))
	}
	if rv.CompleteBy != nil {
		parts = append(parts, "complete by "+stamp(*rv.CompleteBy))
	} else if rv.ForecastNote != "" {
		parts = append(parts, oneLine(rv.ForecastNote))
	}
	if rv.DeltaLayers > 0 {
		parts = append(parts, fmt.Sprintf("%s from deltas (%s saved)", plural(rv.DeltaLayers, "layer"), units.Bytes(max(rv.DeltaSavedBytes, 0))))
	}
	if rv.Error != "" {
		parts = append(parts, "error: "+oneLine(rv.Error))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func stamp(t time.Time) string { return t.UTC().Format("Mon 02 Jan 15:04 UTC") }

func roundDur(d time.Duration) string {
	if d < time.Minute {
		return "under a minute"
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func short12(sha string) string {
	sha = oneLine(sha)
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "-"
	}
	return sha
}

// oneLine keeps text from the daemon on one line of printable characters:
// a status document is outside input, and a terminal must not take escape
// sequences (nor bidirectional overrides) from it. It is the fleet
// document's rule for outside error lines, clipped the same way.
func oneLine(s string) string { return fleet.ClipError(s) }
