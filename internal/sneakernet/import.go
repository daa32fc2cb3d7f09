package sneakernet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ballast-dev/ballast/internal/exportfile"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/ocitar"
	"github.com/ballast-dev/ballast/internal/transfer"
)

// ImportOptions for Import.
type ImportOptions struct {
	File     string
	Registry string // edge registry host:port
	GitDir   string // bare repository of the edge mirror; "" skips git
	// RepoURL names the upstream git repository (for the edge bundle
	// repository); default: the bundle's org.opencontainers.image.source.
	RepoURL string

	RemoteOptions []registryclient.Option
	EngineOptions []transfer.Option
	Log           *slog.Logger
}

// ImportResult summarizes an import.
type ImportResult struct {
	Revision         string         `json:"revision"`
	BundleRepository string         `json:"bundleRepository"`
	Bundle           string         `json:"bundle"`
	Images           int            `json:"images"`
	Git              bool           `json:"git"`
	Stats            transfer.Stats `json:"stats"`
}

// OpenExport opens and fully verifies an export file (exportfile.Verify);
// any failure is an ErrInput error, and nothing is written.
func OpenExport(path string) (*exportfile.Verified, error) {
	v, err := exportfile.Open(path)
	if err != nil {
		return nil, inputErr(err)
	}
	return v, nil
}

// Import loads an export file into the edge: images under their original
// names and tags, then the bundle index (the commit point), then the git
// objects. Everything that can be checked is checked before the first
// write, so a bad file changes nothing.
func Import(ctx context.Context, o ImportOptions) (*ImportResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Registry == "" {
		return nil, inputErr(errors.New("--registry is required"))
	}
	ex, err := OpenExport(o.File)
	if err != nil {
		return nil, err
	}
	defer ex.Close()
	m := ex.Manifest
	lay := layout.Tar(ex.Archive, exportfile.LayoutPrefix)
	repoURL := o.RepoURL
	if repoURL == "" {
		repoURL = ex.Bundle.Source
	}
	if repoURL == "" {
		return nil, inputErr(errors.New("the bundle records no git source: give --repo-url"))
	}
	bundleRepo, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return nil, inputErr(err)
	}
	platforms, _ := oci.ParsePlatforms(strings.Join(m.Platforms, ","))
	res := &ImportResult{Revision: m.Revision, BundleRepository: bundleRepo, Bundle: m.Bundle, Images: len(ex.Bundle.Images)}

	// Git pre-flight: the bundle's prerequisites must be in the mirror.
	var gitFile string
	if m.HasGit && o.GitDir != "" {
		tmp, err := os.MkdirTemp("", "ballast-import-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		gitFile = filepath.Join(tmp, "repo.bundle")
		if err := extractFile(ex.Archive, exportfile.GitBundle, gitFile); err != nil {
			return nil, err
		}
		if err := run(ctx, o.GitDir, "bundle", "verify", "--quiet", gitFile); err != nil {
			return nil, inputErr(fmt.Errorf("git bundle does not apply to %s (wrong --since?): %w", o.GitDir, err))
		}
	}

	remote := func(repo string) (*registryclient.Remote, error) {
		return registryclient.New(o.Registry+"/"+repo, o.RemoteOptions...)
	}
	var jobs []transfer.Job
	for _, im := range ex.Bundle.Images {
		dst, err := remote(im.Ref.EdgeRepository())
		if err != nil {
			return nil, inputErr(err)
		}
		j := transfer.Job{Src: lay, Dst: dst, Root: im.Descriptor, Platforms: platforms}
		if im.Ref.Tag != "" {
			j.Tags = []string{im.Ref.Tag}
		}
		jobs = append(jobs, j)
	}
	bdst, err := remote(bundleRepo)
	if err != nil {
		return nil, inputErr(err)
	}
	// Registry pre-flight: every blob the edge lacks must be in the file.
	if err := preflight(ctx, lay, jobs); err != nil {
		return nil, err
	}

	eng, err := transfer.New(append([]transfer.Option{transfer.WithLogger(o.Log)}, o.EngineOptions...)...)
	if err != nil {
		return nil, err
	}
	st, err := eng.Copy(ctx, jobs...)
	if err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	// The bundle index last; its children are linked into the bundle
	// repository too (mounted), as registries that validate indexes need.
	st2, err := eng.Copy(ctx, transfer.Job{Src: lay, Dst: bdst, Root: ex.Root, Tags: []string{m.Revision}, Platforms: platforms})
	if err != nil {
		return nil, fmt.Errorf("write bundle index: %w", err)
	}
	st.BytesRead += st2.BytesRead
	st.BytesWritten += st2.BytesWritten
	st.BlobsCopied += st2.BlobsCopied
	st.BlobsMounted += st2.BlobsMounted
	st.ManifestsWritten += st2.ManifestsWritten
	res.Stats = st
	if gitFile != "" {
		// A gated mirror repository (docs/mirror.md) keeps upstream branches
		// under a hidden namespace and serves refs/heads/ only once ready:
		// the daemon moves them when it sees the bundle complete.
		heads := "+refs/heads/*:refs/heads/*"
		if isGatedMirror(ctx, o.GitDir) {
			heads = "+refs/heads/*:refs/ballast/upstream/heads/*"
		}
		if err := run(ctx, o.GitDir, "fetch", "--quiet", "--atomic", gitFile, heads, "+refs/tags/*:refs/tags/*"); err != nil {
			return nil, fmt.Errorf("load git objects: %w", err)
		}
		res.Git = true
	}
	return res, nil
}

// preflight walks the images in the file and checks that each blob is in
// the file or already at its target.
func preflight(ctx context.Context, lay *layout.Layout, jobs []transfer.Job) error {
	for _, j := range jobs {
		err := oci.Walk(ctx, sourceFetcher{lay}, j.Root, j.Platforms, func(n oci.Node) error {
			if n.Raw != nil {
				return nil
			}
			if ok, err := lay.BlobExists(ctx, n.Descriptor); err != nil || ok {
				return err
			}
			ok, err := j.Dst.BlobExists(ctx, n.Descriptor)
			if err != nil {
				return &registryError{err}
			}
			if l, isLinker := j.Dst.(transfer.Linker); !ok && isLinker {
				// Held under another repository of the edge registry
				// (an incremental export leaves out what the site has):
				// link it. A link moves no bytes and is valid whether
				// or not the import finishes.
				if ok, err = l.LinkBlob(ctx, n.Descriptor); err != nil {
					return &registryError{err}
				}
			}
			if !ok {
				return inputErr(fmt.Errorf("blob %s is neither in the file nor in the edge registry (incremental export for another --since?)", n.Descriptor.Digest))
			}
			return nil
		})
		var re *registryError
		switch {
		case err == nil:
		case errors.As(err, &re):
			return fmt.Errorf("edge registry: %w", re.err)
		case errors.Is(err, ErrInput):
			return err
		default:
			return inputErr(err)
		}
	}
	return nil
}

type registryError struct{ err error }

func (r *registryError) Error() string { return r.err.Error() }

func extractFile(a *ocitar.Archive, name, out string) error {
	r, err := a.File(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isGatedMirror reports whether the bare repository at dir is a gated
// repository of the edge mirror (gitmirror records it as ballast.gated).
func isGatedMirror(ctx context.Context, dir string) bool {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "config", "--get", "ballast.gated").Output()
	return err == nil && strings.TrimSpace(string(out)) == "true"
}
