package cli

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/demo"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/logging"
)

func newDemoCmd(e *env) *cobra.Command {
	var o demo.Options
	c := &cobra.Command{
		Use:   "demo [--keep] [--dir DIR]",
		Short: "Show the whole flow on this machine, with no internet",
		Long: `demo builds a small "cloud" on loopback — an upstream git repository holding
the example apps (served by git http-backend) and an upstream registry holding
their images, made locally — bundles the first revision as CI would, and starts
the edge daemon behind a simulated satellite link (latency, a bandwidth cap,
connections cut every few MB). It narrates on stdout: the mirror fetch, the
resumed transfers, the gate (ballast verify) turning from NOT READY to READY,
a second revision of which only the changed layer crosses the link, and, with
the link cut, the mirror and registry serving on and an offline rollback
passing the gate. The parts' logs go to demo.log in the working directory
(kept with --dir); only errors reach stderr, unless --log-level is given, which
sends logs of that level and up to stderr instead.

It needs the git CLI, takes about 20 seconds and leaves nothing behind; with
--keep the edge and its status page stay up until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := e.log
			if !cmd.Flags().Changed("log-level") {
				// The narration says what happened: raw log lines on
				// stderr would interleave with it. Errors only there; the
				// rest goes to demo.log in the working directory.
				l, err := logging.New(e.stderr, e.logFormat, "error")
				if err != nil {
					return exitcode.Invalid(err)
				}
				log = demo.QuietLogs(l)
				o.LogFile = true
			}
			// A closed stdout (`ballast demo | head`) must stop the story
			// with a cleanup, not kill the process with SIGPIPE and
			// leave its files behind.
			signal.Ignore(syscall.SIGPIPE)
			o.Out = e.stdout
			o.Log = log
			if _, err := demo.Run(cmd.Context(), o); err != nil {
				return exitcode.Fail(err)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&o.Keep, "keep", false, "keep the edge daemon and its status page up after the story, until Ctrl-C")
	pathVar(c.Flags(), &o.Dir, "dir", "", "working directory, kept afterwards (default: a temporary directory, removed)")
	return c
}
