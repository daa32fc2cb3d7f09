package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/version"
)

func newVersionCmd(e *env) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			switch output {
			case "json":
				return writeJSON(e.stdout, info)
			case "", "text":
				_, err := fmt.Fprintf(e.stdout, "ballast %s\ncommit: %s\ngo: %s\nplatform: %s\n",
					info.Version, info.Commit, info.GoVersion, info.Platform)
				return err
			default:
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
