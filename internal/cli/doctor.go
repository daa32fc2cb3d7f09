package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/doctor"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
)

func newDoctorCmd(e *env) *cobra.Command {
	var (
		o       doctor.Options
		cfgPath string
		output  string
	)
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check this node: k3s registry mirrors and data dir, ballast's data dir, the edge daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			if cfgPath != "" {
				cfg, err := config.Load(cfgPath)
				if err != nil {
					return exitcode.Invalid(err)
				}
				o.DataDir = cfg.DataDir
				if o.EdgeURL == "" {
					o.EdgeURL = "http://" + loopback(cfg.Listen.HTTP)
				}
				if o.Registry == "" {
					o.Registry = loopback(cfg.Listen.Registry)
				}
			}
			if o.EdgeURL == "" {
				o.EdgeURL = "http://127.0.0.1:8080"
			}
			if o.Registry == "" {
				o.Registry = "127.0.0.1:5000"
			}
			rs := doctor.Run(cmd.Context(), o)
			if output == "json" {
				if err := writeJSON(e.stdout, rs); err != nil {
					return err
				}
			} else {
				for _, r := range rs {
					fmt.Fprintf(e.stdout, "%-4s  %-22s %s\n", r.Status, r.Check, r.Detail)
				}
			}
			if doctor.Failed(rs) {
				return exitcode.Fail(fmt.Errorf("doctor: some checks failed"))
			}
			return nil
		},
	}
	f := c.Flags()
	pathVar(f, &cfgPath, "config", "", "edge config file (for the data dir and listen ports)")
	pathVar(f, &o.K3sConfigDir, "k3s-config-dir", "/etc/rancher/k3s", "directory of k3s's registries.yaml and config.yaml")
	f.StringVar(&o.EdgeURL, "edge", "", "edge daemon HTTP base URL (default from --config, else http://127.0.0.1:8080)")
	f.StringVar(&o.Registry, "registry", "", "edge registry host:port as containerd reaches it (default from --config, else 127.0.0.1:5000)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// loopback turns a listen address such as ":8080" into one to dial.
func loopback(listen string) string {
	ep, err := k3sconfig.NodeEndpoint(listen)
	if err != nil {
		return listen
	}
	return ep
}
