package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/argocd"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/verify"
)

func newVerifyCmd(e *env) *cobra.Command {
	var (
		o                 verify.Options
		app, appNamespace string
		output            string
		timeout, appWait  time.Duration
		noReport          bool
		tokenFile         string
	)
	c := &cobra.Command{
		Use:   "verify --repo URL (--revision SHA | --argocd-app NAME) --mirror URL --registry HOST:PORT",
		Short: "The gate: exit 0 only if the revision and its whole bundle are on site",
		Long: `verify exits 0 only when the commit is in the edge's git mirror and the
revision's bundle is complete in the edge registry: the bundle index, every
manifest and blob it reaches for the edge's platforms, and every image tag at
the digest the bundle recorded. Otherwise it exits 1 and says what is missing.
Run it as an Argo CD PreSync hook: a failed check stops the sync before
anything is deployed. An unreachable mirror or registry is exit 1.

--activate (the hook passes it) re-points tags that another revision moved
(a rollback) and records the revision as deployed, so retention keeps it.
--argocd-app reads the revision of the running sync from the Application.

--activate and the report to the daemon's status page change state on the
daemon: they send its API token, read from --api-token-file or else from
$BALLAST_API_TOKEN (the hook Job that install generates mounts it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			if (o.Revision == "") == (app == "") {
				return exitcode.Invalid(errors.New("give exactly one of --revision and --argocd-app"))
			}
			if o.RepoURL == "" || o.MirrorURL == "" || o.Registry == "" {
				return exitcode.Invalid(errors.New("--repo, --mirror and --registry are required"))
			}
			ctx := cmd.Context()
			if app != "" {
				kc, err := argocd.NewClient()
				if err != nil {
					return exitcode.Fail(err)
				}
				rev, err := kc.WaitRevision(ctx, appNamespace, app, o.RepoURL, appWait, time.Second)
				if err != nil {
					return exitcode.Fail(err)
				}
				e.log.Info("revision from Application", "app", appNamespace+"/"+app, "revision", rev)
				o.Revision = rev
			}
			tok, err := apiToken(tokenFile)
			if err != nil {
				return exitcode.Invalid(err)
			}
			o.Token = tok
			o.Revision = strings.ToLower(o.Revision)
			o.Report = !noReport
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			res, err := verify.Run(ctx, o)
			if err != nil {
				return exitcode.Invalid(err)
			}
			if output == "json" {
				if err := writeJSON(e.stdout, res); err != nil {
					return err
				}
			} else {
				printVerify(e, res)
			}
			if !res.Ready {
				return exitcode.Fail(fmt.Errorf("not ready: %s", res.Reason))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.RepoURL, "repo", "", "upstream git URL, exactly as in the edge config's repositories[].url")
	f.StringVar(&o.Revision, "revision", "", "full 40-hex commit SHA to check")
	f.StringVar(&app, "argocd-app", "", "read the revision from this Argo CD Application's running sync")
	f.StringVar(&appNamespace, "argocd-namespace", "argocd", "namespace of the Application")
	f.DurationVar(&appWait, "argocd-wait", time.Minute, "how long to wait for the Application's sync revision to be set")
	f.StringVar(&o.MirrorURL, "mirror", "", "edge daemon HTTP base URL, e.g. http://ballast-edge.ballast.svc:8080")
	f.StringVar(&o.Registry, "registry", "", "edge registry host:port (plain HTTP)")
	f.BoolVar(&o.Activate, "activate", false, "re-point moved tags to this revision and record it as deployed")
	f.BoolVar(&o.Deep, "deep", false, "re-hash every blob instead of trusting the digests verified at sync")
	f.StringVar(&tokenFile, "api-token-file", "", "file holding the edge daemon's API token (default: $"+apiauth.EnvToken+")")
	f.BoolVar(&noReport, "no-report", false, "do not send the result to the edge daemon's status page")
	f.DurationVar(&timeout, "timeout", 20*time.Second, "give up (not ready) after this long")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// apiToken reads the daemon's API token from file, or else from the
// environment; neither gives a zero token (the daemon then refuses
// --activate with a message saying so).
func apiToken(file string) (apiauth.Token, error) {
	if file != "" {
		return apiauth.ReadFile(file)
	}
	if v, ok := os.LookupEnv(apiauth.EnvToken); ok && v != "" {
		t, err := apiauth.Parse([]byte(v))
		if err != nil {
			return apiauth.Token{}, fmt.Errorf("$%s: %w", apiauth.EnvToken, err)
		}
		return t, nil
	}
	return apiauth.Token{}, nil
}

func printVerify(e *env, r *verify.Result) {
	w := e.stdout
	state := "READY"
	if !r.Ready {
		state = "NOT READY"
	}
	fmt.Fprintf(w, "%s  %s@%s\n", state, r.Repo, r.Revision)
	if r.Requested != "" {
		fmt.Fprintf(w, "  %s is an annotated tag object: peeled to commit %s\n", r.Requested, r.Revision)
	}
	fmt.Fprintf(w, "  commit in mirror: %v\n", r.CommitPresent)
	if r.CommitPresent {
		fmt.Fprintf(w, "  bundle: present=%v images=%d charts=%d blobs=%d bytes=%d", r.BundlePresent, r.Images, r.Charts, r.Blobs, r.Bytes)
		if r.Attached > 0 {
			fmt.Fprintf(w, " attached=%d", r.Attached)
		}
		fmt.Fprintln(w)
	}
	// What else was checked, so a READY says what it stands on.
	if r.GitDeps > 0 {
		fmt.Fprintf(w, "  git dependencies (submodule and remote base commits): %d, %d not in the mirror, %d moving refs elsewhere\n", r.GitDeps, len(r.GitDepsMissing), len(r.GitRefsMoved))
	}
	if r.LFSObjects > 0 {
		fmt.Fprintf(w, "  LFS objects: %d, %d not on site\n", r.LFSObjects, len(r.LFSMissing))
	}
	if r.Activated {
		fmt.Fprintln(w, "  activated: recorded as deployed, tags point at this revision")
	}
	for i, m := range r.Missing {
		if i == 10 {
			fmt.Fprintf(w, "  … and %d more\n", len(r.Missing)-10)
			break
		}
		fmt.Fprintf(w, "  missing: %s\n", m)
	}
	if r.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", r.Reason)
	}
	fmt.Fprintf(w, "  checked in %.3fs\n", r.Seconds)
}
