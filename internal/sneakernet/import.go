package sneakernet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/exportfile"
	"github.com/ballast-dev/ballast/internal/gitmirror"
	"github.com/ballast-dev/ballast/internal/imageref"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/ocitar"
	"github.com/ballast-dev/ballast/internal/progress"
	"github.com/ballast-dev/ballast/internal/syncer"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// ImportOptions for Import.
type ImportOptions struct {
	File     string
	Registry string // edge registry host:port
	GitDir   string // bare repository of the edge mirror; "" skips git
	// RepoURL names the upstream git repository (for the edge bundle
	// repository); default: the bundle's org.opencontainers.image.source.
	RepoURL string
	// Mirror, when set, loads the git objects (instead of GitDir): the
	// mirror's refs, keep rules and git environment, and its subscribers
	// see the change.
	Mirror *gitmirror.Mirror
	// Sync, when set, lands the bundle by sync's rules (images, then tags
	// by the claim rules, then the index) in the edge registry it owns;
	// Registry and RemoteOptions then only serve the pre-flight checks.
	Sync *syncer.Syncer
	// GitDeps, when set, loads the dependency repositories' commits the
	// file carries (the site's mirror); LFS, when set, stores its LFS
	// objects (the site's LFS store). Without them those parts of a v2
	// file are checked but not loaded.
	GitDeps GitDepsLoader
	LFS     LFSImporter
	// Force lets the file move mirror branches backwards and re-point git
	// tags (old tips are kept). The default is false.
	Force bool

	RemoteOptions []registryclient.Option
	Progress      progress.Func // copy progress; nil for none
	Log           *slog.Logger
}

// ImportResult summarizes an import.
type ImportResult struct {
	Revision         string `json:"revision"`
	BundleRepository string `json:"bundleRepository"`
	Bundle           string `json:"bundle"`
	Images           int    `json:"images"`           // image entries of the bundle
	Charts           int    `json:"charts,omitempty"` // Helm chart and OCI source entries
	Git              bool   `json:"git"`
	// GitRefs says which mirror refs the file moved or was refused.
	GitRefs *gitmirror.LoadResult `json:"gitRefs,omitempty"`
	// GitDepCommits counts the dependency commits loaded; LFSObjects and
	// LFSBytes the LFS objects stored (LFSSkipped: already on site).
	GitDepCommits int            `json:"gitDepCommits,omitempty"`
	LFSObjects    int            `json:"lfsObjects,omitempty"`
	LFSBytes      int64          `json:"lfsBytes,omitempty"`
	LFSSkipped    int            `json:"lfsSkipped,omitempty"`
	Stats         transfer.Stats `json:"stats"`
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
		return nil, inputErr(errors.New("no edge registry to import into"))
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
		return nil, inputErr(errors.New("the bundle records no git source: the repository URL must be given"))
	}
	bundleRepo, err := imageref.BundleRepository(repoURL)
	if err != nil {
		return nil, inputErr(err)
	}
	platforms, _ := oci.ParsePlatforms(strings.Join(m.Platforms, ","))
	res := &ImportResult{Revision: m.Revision, BundleRepository: bundleRepo, Bundle: m.Bundle}
	for _, im := range ex.Bundle.Images {
		if im.Chart != nil {
			res.Charts++
		} else {
			res.Images++
		}
	}

	// Git pre-flight: the bundle's prerequisites must be in the mirror.
	var gitFile string
	if m.HasGit && (o.Mirror != nil || o.GitDir != "") {
		tmp, err := os.MkdirTemp("", "ballast-import-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		gitFile = filepath.Join(tmp, "repo.bundle")
		if err := extractFile(ex.Archive, exportfile.GitBundle, gitFile); err != nil {
			return nil, err
		}
		if o.Mirror != nil {
			err = o.Mirror.CheckBundle(ctx, repoURL, gitFile)
		} else {
			err = gitmirror.CheckBundleIn(ctx, o.GitDir, gitFile)
		}
		if err != nil {
			return nil, inputErr(err)
		}
	}

	// Dependency pre-flight: each bundle holds the commits it claims.
	var depFiles []string
	if len(m.GitDeps) > 0 && o.GitDeps != nil {
		tmp, err := os.MkdirTemp("", "ballast-import-deps-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if depFiles, err = extractDeps(ctx, ex.Archive, m, tmp); err != nil {
			return nil, err
		}
	} else if len(m.GitDeps) > 0 {
		o.Log.Warn("the file carries git dependencies but there is no mirror to load them into", "repositories", len(m.GitDeps))
	}
	if len(m.LFS) > 0 && o.LFS == nil {
		o.Log.Warn("the file carries LFS objects but there is no LFS store to load them into", "objects", len(m.LFS))
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

	eng, err := transfer.New(append([]transfer.Option{transfer.WithLogger(o.Log)}, transfer.CommandOptions(0, o.Progress)...)...)
	if err != nil {
		return nil, err
	}
	if o.Sync != nil {
		res.Stats, err = landWithSync(ctx, o.Sync, repoURL, lay, ex, bundleRepo, eng, platforms)
	} else {
		res.Stats, err = land(ctx, eng, lay, jobs, bdst, ex.Root, m.Revision, platforms)
	}
	if err != nil {
		return nil, err
	}
	if gitFile != "" {
		var lr *gitmirror.LoadResult
		if o.Mirror != nil {
			lr, err = o.Mirror.LoadBundle(ctx, repoURL, gitFile, gitmirror.LoadOptions{Force: o.Force})
		} else {
			lr, err = gitmirror.LoadBundleInto(ctx, o.GitDir, gitFile, gitmirror.LoadOptions{Force: o.Force})
		}
		if err != nil {
			return nil, fmt.Errorf("load git objects: %w", err)
		}
		res.Git, res.GitRefs = true, lr
	}
	for i, p := range depFiles {
		g := m.GitDeps[i]
		if err := o.GitDeps.LoadDepBundle(ctx, g.URL, p, g.Commits); err != nil {
			if errors.Is(err, gitmirror.ErrBundle) {
				err = inputErr(err)
			}
			return nil, fmt.Errorf("load git dependency %s: %w", g.URL, err)
		}
		res.GitDepCommits += len(g.Commits)
	}
	if len(m.LFS) > 0 && o.LFS != nil {
		n, b, err := importLFS(ctx, o.LFS, repoURL, ex.Archive, m.LFS)
		if err != nil {
			return nil, err
		}
		res.LFSObjects, res.LFSBytes, res.LFSSkipped = n, b, len(m.LFS)-n
	}
	return res, nil
}

// land copies the images, then the bundle index, to a registry reached
// over HTTP (a running edge registry).
func land(ctx context.Context, eng *transfer.Engine, lay *layout.Layout, jobs []transfer.Job, bdst *registryclient.Remote, root v1.Descriptor, rev string, platforms oci.Platforms) (transfer.Stats, error) {
	st, err := eng.Copy(ctx, jobs...)
	if err != nil {
		return st, fmt.Errorf("load images: %w", err)
	}
	// The index's signature, when the file carries one, before the index:
	// the edge's trust policy checks it there.
	sigTag := trust.SignatureTag(root.Digest)
	if sig, err := lay.ResolveTag(ctx, sigTag); err == nil {
		if _, err := eng.Copy(ctx, transfer.Job{Src: lay, Dst: bdst, Root: sig, Tags: []string{sigTag}}); err != nil {
			return st, fmt.Errorf("load bundle signature: %w", err)
		}
	} else if !errors.Is(err, transfer.ErrNotFound) {
		return st, fmt.Errorf("bundle signature: %w", err)
	}
	// The bundle index last; its children are linked into the bundle
	// repository too (mounted), as registries that validate indexes need.
	st2, err := eng.Copy(ctx, transfer.Job{Src: lay, Dst: bdst, Root: root, Tags: []string{rev}, Platforms: platforms})
	if err != nil {
		return st, fmt.Errorf("write bundle index: %w", err)
	}
	st.BytesRead += st2.BytesRead
	st.BytesWritten += st2.BytesWritten
	st.BlobsCopied += st2.BlobsCopied
	st.BlobsMounted += st2.BlobsMounted
	st.ManifestsWritten += st2.ManifestsWritten
	return st, nil
}

// landWithSync lands the file's bundle through the edge's syncer, by the
// same rules and the same code as a sync pass.
func landWithSync(ctx context.Context, sy *syncer.Syncer, repoURL string, lay *layout.Layout, ex *exportfile.Verified, bundleRepo string, eng *transfer.Engine, platforms oci.Platforms) (transfer.Stats, error) {
	raw, err := lay.FetchManifest(ctx, ex.Root)
	if err != nil {
		return transfer.Stats{}, inputErr(fmt.Errorf("bundle index: %w", err))
	}
	if err := oci.VerifyBytes(raw, ex.Root); err != nil {
		return transfer.Stats{}, inputErr(fmt.Errorf("bundle index: %w", err))
	}
	st, err := sy.LandImport(ctx, repoURL, syncer.Landing{Src: lay, BundleRepo: bundleRepo, Bundle: ex.Bundle,
		Root: ex.Root, Raw: raw, Engine: eng, Platforms: platforms})
	if err != nil {
		return st, fmt.Errorf("land bundle: %w", err)
	}
	return st, nil
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
				return inputErr(fmt.Errorf("blob %s is neither in the file nor in the edge registry (an incremental export made for another base revision?)", n.Descriptor.Digest))
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
