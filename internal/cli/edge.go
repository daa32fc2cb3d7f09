package cli

import (
	"errors"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/edge"
	"github.com/ballast-dev/ballast/internal/exitcode"
)

func newEdgeCmd(e *env) *cobra.Command {
	var configPath string
	c := &cobra.Command{
		Use:   "edge --config FILE",
		Short: "Run the edge daemon: git mirror, edge registry, sync, status page, API, metrics",
		Long: `Run the edge daemon next to Argo CD. It serves every configured repository at
http://<listen.http>/git/<host>/<path>.git, fetching from the upstream when the
link allows; the edge registry on listen.registry, which k3s pulls from; sync,
which brings each wanted revision's bundle over the link; and the status page
at /, a JSON API at /api/v1/, /metrics, /healthz and /readyz.
It stops cleanly on SIGTERM or SIGINT.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return exitcode.Invalid(errors.New("--config is required"))
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return exitcode.Invalid(err)
			}
			d, err := edge.New(cfg, e.log)
			if err != nil {
				return exitcode.Invalid(err)
			}
			err = d.Run(cmd.Context())
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) {
				// A listen address that cannot be bound is a config error.
				return exitcode.Invalid(err)
			}
			return exitcode.Fail(err)
		},
	}
	pathVar(c.Flags(), &configPath, "config", "", "edge config file (YAML)")
	return c
}
