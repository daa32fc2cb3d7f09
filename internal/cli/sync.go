package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/site"
)

func newSyncCmd(e *env) *cobra.Command {
	var (
		configPath string
		once       bool
		output     string
		now        bool
		edgeURL    string
		tokenFile  string
		ignoreBud  bool
		revisions  []string
	)
	c := &cobra.Command{
		Use:   "sync (--once --config FILE [--revision SHA]… | --now [--edge URL] [--ignore-budget])",
		Short: "Run one sync pass on the edge data dir (CronJob style), or ask the running daemon for one now",
		Long: `sync --once fetches every configured repository into the mirror (when the link
allows), then brings the bundle of every wanted revision into the edge
registry, working on the data dir directly. It exits 0 once every wanted
revision that has a bundle upstream is complete, 1 otherwise. A lock keeps it
from running beside the edge daemon, which syncs by itself. It keeps to the
link's windows and budget (link in the edge config): outside a window it
moves nothing and exits 1, saying when the next window opens. --revision SHA
(repeatable) also wants that revision, of every configured repository whose
mirror has the commit, beyond the kept history: an older revision to roll back
to that the upstream (an upstream edge, a port) still keeps. It is fetched
first; retention keeps it once it is deployed (verify --activate), and a later
pass removes it otherwise.

sync --now asks the running edge daemon for a pass at once that may use the
link outside its windows (POST /api/v1/sync/now, with the API token from
--api-token-file, $BALLAST_API_TOKEN, or the config's api.tokenFile). The
budget still holds unless --ignore-budget. --edge is the daemon's HTTP base
URL; with --config instead, it is derived from listen.http.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if now {
				if once {
					return exitcode.Invalid(errors.New("--now and --once exclude each other"))
				}
				if len(revisions) > 0 {
					return exitcode.Invalid(errors.New("--revision goes with --once"))
				}
				return syncNow(cmd.Context(), e, syncNowOptions{edgeURL: edgeURL, configPath: configPath, tokenFile: tokenFile, ignoreBudget: ignoreBud, output: output})
			}
			if ignoreBud {
				return exitcode.Invalid(errors.New("--ignore-budget goes with --now"))
			}
			if !once {
				return exitcode.Invalid(errors.New("sync runs inside `ballast edge`; use --once for a single pass, or --now to ask the daemon for one"))
			}
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			if configPath == "" {
				return exitcode.Invalid(errors.New("--config is required"))
			}
			for _, r := range revisions {
				if !bundle.IsRevision(r) {
					return exitcode.Invalid(fmt.Errorf("--revision %q: want a full 40-hex commit SHA", r))
				}
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return exitcode.Invalid(err)
			}
			ctx := cmd.Context()
			s, err := site.Open(ctx, cfg, site.Options{Logger: e.log, Revisions: revisions})
			if err != nil {
				return exitcode.Fail(err)
			}
			defer s.Close()
			res, st, passErr := s.SyncOnce(ctx)
			if ctx.Err() != nil {
				return exitcode.Fail(ctx.Err())
			}
			if output == "json" {
				if err := writeJSON(e.stdout, struct {
					Result site.PassResult `json:"result"`
					Done   bool            `json:"done"`
					Status site.Status     `json:"status"`
				}{res, res.Done() && passErr == nil, st}); err != nil {
					return err
				}
			} else {
				for _, r := range st.Repos {
					for _, rv := range r.Revisions {
						line := fmt.Sprintf("%s\t%s\t%s", r.Repo, rv.Revision, rv.State)
						if rv.Error != "" {
							line += "\t" + rv.Error
						}
						fmt.Fprintln(e.stdout, line)
					}
				}
				fmt.Fprintf(e.stdout, "wanted %d, complete %d, no bundle %d, failed %d, link bytes %d\n",
					res.Wanted, res.Complete, res.NoBundle, res.Failed, st.LinkBytesTotal)
			}
			if passErr != nil {
				return exitcode.Fail(passErr)
			}
			if !res.Done() {
				if res.LinkStop != "" {
					return exitcode.Fail(fmt.Errorf("some wanted revisions wait for the link: %s", res.LinkStop))
				}
				return exitcode.Fail(errors.New("some wanted revisions are not complete"))
			}
			return nil
		},
	}
	pathVar(c.Flags(), &configPath, "config", "", "edge config file (YAML)")
	c.Flags().BoolVar(&once, "once", false, "run one pass and exit")
	c.Flags().StringArrayVar(&revisions, "revision", nil, "with --once: also fetch this revision (full SHA) beyond the kept history, e.g. to roll back; repeatable")
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	c.Flags().BoolVar(&now, "now", false, "ask the running edge daemon for a pass now, outside the link's windows")
	c.Flags().StringVar(&edgeURL, "edge", "", "with --now: the edge daemon's HTTP base URL (default: from --config's listen.http)")
	c.Flags().StringVar(&tokenFile, "api-token-file", "", "with --now: file holding the daemon's API token (default: $"+apiauth.EnvToken+", else the config's)")
	c.Flags().BoolVar(&ignoreBud, "ignore-budget", false, "with --now: also spend past the link budget")
	return c
}
