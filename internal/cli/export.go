package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/site"
	"github.com/ballast-dev/ballast/internal/sneakernet"
	"github.com/ballast-dev/ballast/internal/units"
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
layout), a git bundle of the repository's branches and tags, the commits of the
submodules and remote Kustomize bases the bundle records (one git bundle per
repository), the LFS objects the exported history points at, and a manifest of
checksums. With --since SHA it holds only what a site that already has SHA's
export lacks.

Dependency commits are fetched from their upstreams, or with --deps-mirror from
an edge's mirror. LFS objects come from the --git repository's LFS storage, the
others from --lfs-url (default: the edge's LFS API with --deps-mirror, else
<source>.git/info/lfs).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			ps, err := oci.ParsePlatforms(platform)
			if err != nil {
				return exitcode.Invalid(err)
			}
			o.Platforms = ps
			o.Log = e.log
			o.RemoteOptions = []registryclient.Option{registryclient.WithInsecure(insecure)}
			o.Progress = progressLogger(e)
			res, err := sneakernet.Export(cmd.Context(), o)
			if err != nil {
				return classify(err, sneakernet.ErrInput)
			}
			if output == "json" {
				return writeJSON(e.stdout, res)
			}
			_, err = fmt.Fprintf(e.stdout, "revision: %s\nbundle:   %s\nwritten:  %s (%s: %s of blobs, %s of git)\n",
				res.Revision, res.Bundle, res.Output, units.Bytes(res.Bytes), units.Bytes(res.BlobBytes), units.Bytes(res.GitBytes))
			if err == nil && (res.GitDepCommits > 0 || res.LFSObjects > 0) {
				_, err = fmt.Fprintf(e.stdout, "deps:     %d commits (%s), %d LFS objects (%s)\n",
					res.GitDepCommits, units.Bytes(res.GitDepsBytes), res.LFSObjects, units.Bytes(res.LFSBytes))
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Bundle, "bundle", "", "bundle to export, REGISTRY/REPO:SHA")
	pathVar(f, &o.GitDir, "git", "", "git repository whose branches and tags go into the file")
	pathVar(f, &o.Output, "output", "", "file to write")
	f.StringVar(&o.Since, "since", "", "revision whose bundle and git objects the site already has")
	f.StringVar(&o.DepsMirror, "deps-mirror", "", "edge HTTP base (http://edge:8080) to fetch submodule/base commits and LFS objects from, instead of their upstreams")
	f.StringVar(&o.LFSURL, "lfs-url", "", "LFS endpoint for objects not in --git's LFS storage")
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
		cfgPath   string
	)
	c := &cobra.Command{
		Use:   "import FILE (--config edge.yaml | --registry HOST:PORT [--git-dir DIR])",
		Short: "Load an export file into the edge registry and git mirror",
		Long: `import verifies every checksum of an export file, then loads the images into
the edge registry under their original names and tags, the bundle index last,
and the git objects into the mirror's bare repository. A truncated, corrupted
or tampered file is rejected and changes nothing.

With --config, import works on the edge data dir directly, exactly as sync
would (the edge daemon must not be running: they share the sync lock); with
--registry it pushes to a running edge registry.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", output))
			}
			file, err := absPath(args[0])
			if err != nil {
				return exitcode.Invalid(err)
			}
			o.File = file
			o.Log = e.log
			// Mount without from: ballast's edge registry links blobs it
			// holds anywhere; another registry opens the upload session
			// the blob's upload then uses (no extra round trip).
			o.RemoteOptions = []registryclient.Option{registryclient.WithInsecure(insecure), registryclient.WithMountAnywhere(true)}
			if credsFile != "" {
				raw, err := os.ReadFile(credsFile)
				if err != nil {
					return exitcode.Invalid(fmt.Errorf("--credentials-file: %w", err))
				}
				user, pass, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
				if !ok || user == "" {
					return exitcode.Invalid(fmt.Errorf("--credentials-file %s: want one line user:password", credsFile))
				}
				o.RemoteOptions = append(o.RemoteOptions, registryclient.WithAuth(&authn.Basic{Username: user, Password: pass}))
			}
			o.Progress = progressLogger(e)
			var res *sneakernet.ImportResult
			if cfgPath != "" {
				if o.Registry != "" || o.GitDir != "" {
					return exitcode.Invalid(errors.New("--config and --registry/--git-dir exclude each other"))
				}
				if res, err = importIntoSite(cmd.Context(), e, cfgPath, o); err != nil {
					return err
				}
			} else if o.Registry == "" {
				return exitcode.Invalid(errors.New("give --config edge.yaml, or --registry HOST:PORT"))
			} else {
				res, err = sneakernet.Import(cmd.Context(), o)
			}
			if err != nil {
				return classify(err, sneakernet.ErrInput)
			}
			if output == "json" {
				return writeJSON(e.stdout, res)
			}
			if res.GitRefs != nil {
				for _, r := range res.GitRefs.Refused {
					fmt.Fprintf(e.stderr, "git: %s stays at %s (the file has %s, not a descendant; --force moves it)\n", r.Name, r.Old, r.New)
				}
			}
			_, err = fmt.Fprintf(e.stdout, "revision: %s\nbundle:   %s:%s (%s)\nimages:   %d\ncharts:   %d\ngit:      %v\nbytes:    %s written\n",
				res.Revision, res.BundleRepository, res.Revision, res.Bundle, res.Images, res.Charts, res.Git, units.Bytes(res.Stats.BytesWritten))
			if err == nil && (res.GitDepCommits > 0 || res.LFSObjects+res.LFSSkipped > 0) {
				_, err = fmt.Fprintf(e.stdout, "deps:     %d commits, %d LFS objects (%s) stored, %d already on site\n",
					res.GitDepCommits, res.LFSObjects, units.Bytes(res.LFSBytes), res.LFSSkipped)
			}
			return err
		},
	}
	f := c.Flags()
	pathVar(f, &cfgPath, "config", "", "edge config: import into its data dir (registry and git mirror) directly")
	f.StringVar(&o.Registry, "registry", "", "edge registry HOST:PORT")
	pathVar(f, &credsFile, "credentials-file", "", "file with one line user:password for writes (default: docker config)")
	pathVar(f, &o.GitDir, "git-dir", "", "bare repository of the edge mirror to load git objects into")
	f.StringVar(&o.RepoURL, "repo-url", "", "upstream git URL (default: the bundle's source annotation)")
	f.BoolVar(&o.Force, "force", false, "let the file move mirror branches backwards and re-point git tags (old tips are kept)")
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

// importIntoSite opens the edge data dir of the config at cfgPath (under
// its lock) and imports the file there, as sync would have brought it.
// Its errors carry their exit codes.
func importIntoSite(ctx context.Context, e *env, cfgPath string, o sneakernet.ImportOptions) (*sneakernet.ImportResult, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, exitcode.Invalid(err)
	}
	if o.RepoURL != "" {
		if _, ok := cfg.Repository(repoIDOfURL(o.RepoURL)); !ok {
			return nil, exitcode.Invalid(fmt.Errorf("--repo-url %s is not in the edge config", o.RepoURL))
		}
	} else if len(cfg.Repositories) != 1 {
		return nil, exitcode.Invalid(errors.New("--repo-url: the config has several repositories; say which one the file is for"))
	}
	// A missing or unreadable file is the operator's to fix, whoever holds
	// the data dir's lock: say so before asking for the lock.
	if fi, err := os.Stat(o.File); err != nil {
		return nil, exitcode.Invalid(fmt.Errorf("export file: %w", err))
	} else if !fi.Mode().IsRegular() {
		return nil, exitcode.Invalid(fmt.Errorf("export file %s: not a regular file", o.File))
	}
	s, err := site.Open(ctx, cfg, site.Options{Logger: e.log})
	if err != nil {
		return nil, exitcode.Fail(err)
	}
	defer s.Close()
	res, err := s.Import(ctx, o)
	if errors.Is(err, site.ErrUnknownRepo) {
		return nil, exitcode.Invalid(err)
	}
	if err != nil {
		return nil, classify(err, sneakernet.ErrInput)
	}
	return res, nil
}

func repoIDOfURL(u string) string {
	id, err := imageref.RepoID(u)
	if err != nil {
		return ""
	}
	return id
}
