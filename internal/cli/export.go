package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/transfer"
)

func newExportCmd(e *env) *cobra.Command {
	var (
		o        sneakernet.ExportOptions
		platform string
		insecure bool
		output   string
	)
	c := &cobra.Command{
		Use:   "export --bundle REGISTRY/REPO:SHA --git DIR --output FILE.tar",
		Short: "Write a revision's bundle and git objects to one file, for sites without a link",
		Long: `export writes one tar file holding the bundle of a revision (an OCI image
layout), a git bundle of the repository's branches and tags, and a manifest of
checksums. With --since SHA it holds only what a site that already has SHA's
bundle and git objects lacks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			ps, err := bundle.ParsePlatforms(platform)
			if err != nil {
				return exitcode.Invalid(err)
			}
			o.Platforms = ps
			o.Log = e.log
			o.RemoteOptions = []transfer.RemoteOption{transfer.WithInsecure(insecure)}
			o.EngineOptions = []transfer.Option{transfer.WithProgress(progressLogger(e))}
			res, err := sneakernet.Export(cmd.Context(), o)
			if err != nil {
				return classify(err, sneakernet.ErrInput)
			}
			if output == "json" {
				return writeJSON(e.stdout, res)
			}
			_, err = fmt.Fprintf(e.stdout, "revision: %s\nbundle:   %s\nwritten:  %s (%s: %s of blobs, %s of git)\n",
				res.Revision, res.Bundle, res.Output, humanBytes(res.Bytes), humanBytes(res.BlobBytes), humanBytes(res.GitBytes))
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Bundle, "bundle", "", "bundle to export, REGISTRY/REPO:SHA")
	f.StringVar(&o.GitDir, "git", "", "git repository whose branches and tags go into the file")
	f.StringVar(&o.Output, "output", "", "file to write")
	f.StringVar(&o.Since, "since", "", "revision whose bundle and git objects the site already has")
	f.StringVar(&platform, "platform", "", "only these platforms, e.g. linux/arm64 (default all)")
	f.BoolVar(&insecure, "insecure", false, "use plain HTTP for the registry")
	f.StringVarP(&output, "output-format", "o", "text", "output format: text or json")
	return c
}

func newImportCmd(e *env) *cobra.Command {
	var (
		o         sneakernet.ImportOptions
		credsFile string
		insecure  bool
		output    string
	)
	c := &cobra.Command{
		Use:   "import FILE --registry HOST:PORT [--git-dir DIR]",
		Short: "Load an export file into the edge registry and git mirror",
		Long: `import verifies every checksum of an export file, then loads the images into
the edge registry under their original names and tags, the bundle index last,
and the git objects into the mirror's bare repository. A truncated, corrupted
or tampered file is rejected and changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			o.File = args[0]
			o.Log = e.log
			o.RemoteOptions = []transfer.RemoteOption{transfer.WithInsecure(insecure)}
			if credsFile != "" {
				raw, err := os.ReadFile(credsFile)
				if err != nil {
					return exitcode.Invalid(fmt.Errorf("--credentials-file: %w", err))
				}
				user, pass, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
				if !ok || user == "" {
					return exitcode.Invalid(fmt.Errorf("--credentials-file %s: want one line user:password", credsFile))
				}
				o.RemoteOptions = append(o.RemoteOptions, transfer.WithAuth(&authn.Basic{Username: user, Password: pass}))
			}
			o.EngineOptions = []transfer.Option{transfer.WithProgress(progressLogger(e))}
			res, err := sneakernet.Import(cmd.Context(), o)
			if err != nil {
				return classify(err, sneakernet.ErrInput)
			}
			if output == "json" {
				return writeJSON(e.stdout, res)
			}
			_, err = fmt.Fprintf(e.stdout, "revision: %s\nbundle:   %s:%s (%s)\nimages:   %d\ngit:      %v\nbytes:    %s written\n",
				res.Revision, res.BundleRepository, res.Revision, res.Bundle, res.Images, res.Git, humanBytes(res.Stats.BytesWritten))
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Registry, "registry", "", "edge registry HOST:PORT")
	f.StringVar(&credsFile, "credentials-file", "", "file with one line user:password for writes (default: docker config)")
	f.StringVar(&o.GitDir, "git-dir", "", "bare repository of the edge mirror to load git objects into")
	f.StringVar(&o.RepoURL, "repo-url", "", "upstream git URL (default: the bundle's source annotation)")
	f.BoolVar(&insecure, "insecure", true, "use plain HTTP for the edge registry")
	f.StringVarP(&output, "output-format", "o", "text", "output format: text or json")
	return c
}

// classify maps an error to its exit code: errors wrapping input are bad
// input (2), others failures (1).
func classify(err, input error) error {
	if errors.Is(err, input) {
		return exitcode.Invalid(err)
	}
	return exitcode.Fail(err)
}
