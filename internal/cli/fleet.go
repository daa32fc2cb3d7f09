package cli

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/fleet"
)

func newFleetCmd(e *env) *cobra.Command {
	var (
		o        fleet.ReadOptions
		output   string
		htmlPath string
		keyPaths []string
	)
	c := &cobra.Command{
		Use:   "fleet --repository REGISTRY/PATH",
		Short: "Show what every site has ready, deployed and pending, from the status documents the sites publish",
		Long: `Read the latest status document of every site from the hub registry (each edge
with a fleet section in its config publishes REPOSITORY/<site>:latest) and print,
per site and repository, the ready, deployed and pending revisions and how old
that information is. A site whose latest document is older than --stale is
UNKNOWN: nothing it last said is shown as ready. A site whose document cannot be
read is ERROR, with the reason; the others are shown all the same.

With --key, every site's latest document must be signed (the edge's
fleet.signKey, cosign's format) by a trusted key: --key FILE trusts a public key
for every site, --key DIR trusts DIR/<site>.pub and DIR/<site>/*.pub for that
site only; repeat --key to give old and new keys while rotating. A site whose
document is unsigned, signed by another key or whose signature is of another
digest is UNTRUSTED, with the reason, never shown as ready. Without --key the
documents are read unverified, and the output says so.

Sites are listed from the registry's catalog (/v2/_catalog: Distribution,
including Debian's docker-registry, and ballast's edge registry); on a registry
without a catalog, name them with --sites. Credentials come from the docker
config ($DOCKER_CONFIG/config.json), as for ballast bundle.

Exit codes: 0 the table was written (whatever the sites' states), 1 the sites
could not be listed or the page not written, 2 bad flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Repository == "" {
				return exitcode.Invalid(errors.New("--repository is required"))
			}
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			if o.Stale <= 0 {
				return exitcode.Invalid(fmt.Errorf("--stale %v: must be positive", o.Stale))
			}
			for _, s := range o.Sites {
				if err := fleet.ValidSiteName(s); err != nil {
					return exitcode.Invalid(fmt.Errorf("--sites: %w", err))
				}
			}
			if len(keyPaths) > 0 {
				keys, err := fleet.LoadKeys(keyPaths)
				if err != nil {
					return exitcode.Invalid(fmt.Errorf("--key: %w", err))
				}
				o.Keys = keys
			}
			f, err := fleet.Read(cmd.Context(), o)
			if err != nil {
				return exitcode.Fail(err)
			}
			if htmlPath != "" {
				var b bytes.Buffer
				if err := f.WriteHTML(&b); err != nil {
					return exitcode.Fail(err)
				}
				if err := atomicfile.WriteFile(htmlPath, b.Bytes(), 0o644); err != nil {
					return exitcode.Fail(fmt.Errorf("--html: %w", err))
				}
			}
			if output == "json" {
				return writeJSON(e.stdout, f)
			}
			return f.WriteText(e.stdout)
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.Repository, "repository", "", "the sites' parent repository, REGISTRY[:PORT]/PATH (fleet.repository in the edge configs)")
	fl.StringSliceVar(&o.Sites, "sites", nil, "sites to read (comma-separated); default: every site in the registry's catalog")
	fl.DurationVar(&o.Stale, "stale", fleet.DefaultStale, "a site whose latest document is older than this is UNKNOWN")
	fl.BoolVar(&o.Insecure, "insecure", false, "use plain HTTP for the registry")
	fl.IntVar(&o.Concurrency, "concurrency", 16, "sites read at once")
	pathVar(fl, &htmlPath, "html", "", "also write a static HTML page to this file")
	fl.StringArrayVar(&keyPaths, "key", nil, "verify the documents: a public key file trusted for every site, or a directory of <site>.pub and <site>/*.pub; repeatable (rotation)")
	fl.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}
