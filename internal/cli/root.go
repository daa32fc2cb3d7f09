// Package cli holds the command-line interface: flags and their mapping onto
// the internal packages. Only this package knows about flags.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/logging"
)

// env is what every command needs from the process: its output streams and
// the logger built from the global flags. Commands receive it explicitly.
type env struct {
	stdout    io.Writer
	stderr    io.Writer
	log       *slog.Logger
	logFormat string
	logLevel  string
}

// Main runs the ballast command line with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: logging.Discard()}
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.Code(err)
	var ee *exitcode.Error
	if !errors.As(err, &ee) && isUsageError(err) {
		code = exitcode.BadInput
	}
	fmt.Fprintf(stderr, "ballast: %v\n", err)
	return code
}

// isUsageError recognises cobra's own argument and flag errors, which are
// returned unwrapped.
func isUsageError(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

type flagError struct{ err error }

func (f *flagError) Error() string { return f.err.Error() }
func (f *flagError) Unwrap() error { return f.err }

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "ballast",
		Short: "Keep Argo CD deployable on edge sites whose link comes and goes",
		Long: `ballast moves every network step of a GitOps deployment before the deployment:
a git mirror next to Argo CD, image bundles per git revision, a local registry,
a resumable sync over the link, and a PreSync gate that lets a sync start only
when everything it needs is on site.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := logging.New(e.stderr, e.logFormat, e.logLevel)
			if err != nil {
				return exitcode.Invalid(err)
			}
			e.log = l
			slog.SetDefault(l)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&e.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })

	for _, c := range []*cobra.Command{
		newImagesCmd(e),
		newVersionCmd(e),
		newInstallCmd(e),
		newDoctorCmd(e),
		newEdgeCmd(e),
		newSyncCmd(e),
		newStatusCmd(e),
		newVerifyCmd(e),
		newBundleCmd(e),
		newExportCmd(e),
		newImportCmd(e),
		newDemoCmd(e),
		newFleetCmd(e),
	} {
		root.AddCommand(c)
	}
	wrapArgErrors(root)
	return root
}

// wrapArgErrors makes positional-argument validation errors exit with 2.
func wrapArgErrors(c *cobra.Command) {
	if c.Args != nil {
		orig := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				return &flagError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgErrors(sub)
	}
}
