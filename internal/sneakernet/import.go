package sneakernet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
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

	RemoteOptions []transfer.RemoteOption
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

// ExportFile is an opened, fully verified export file.
type ExportFile struct {
	Manifest *Manifest
	Archive  *transfer.TarArchive
	Layout   *transfer.Layout
	Bundle   *bundle.Bundle
	Root     v1.Descriptor
}

// Close closes the file.
func (e *ExportFile) Close() error { return e.Archive.Close() }

// OpenExport opens an export file and verifies all of it: the archive's
// entries are safe, every file is listed in the manifest with its size and
// checksum (and nothing else is in the archive), blob names match their
// content, and the bundle index parses and records the revision. Any
// failure is an ErrInput error; nothing is written.
func OpenExport(path string) (*ExportFile, error) {
	a, err := transfer.OpenTar(path)
	if err != nil {
		return nil, inputErr(err)
	}
	e, err := verifyExport(a)
	if err != nil {
		a.Close()
		return nil, inputErr(fmt.Errorf("%s: %w", path, err))
	}
	return e, nil
}

// ReadExport is OpenExport over an archive already in memory or open.
func ReadExport(r io.ReaderAt, size int64) (*ExportFile, error) {
	a, err := transfer.ReadTar(r, size, nil)
	if err != nil {
		return nil, inputErr(err)
	}
	e, err := verifyExport(a)
	if err != nil {
		return nil, inputErr(err)
	}
	return e, nil
}

func verifyExport(a *transfer.TarArchive) (*ExportFile, error) {
	mr, err := a.Open(ManifestName)
	if err != nil {
		return nil, fmt.Errorf("not a ballast export (no %s): %w", ManifestName, err)
	}
	if mr.Size() > maxManifestSize {
		return nil, fmt.Errorf("%s too large", ManifestName)
	}
	raw, err := io.ReadAll(mr)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	listed := map[string]File{}
	for _, f := range m.Files {
		listed[f.Name] = f
	}
	for _, n := range a.Names() {
		if n == ManifestName {
			continue
		}
		if _, ok := listed[n]; !ok {
			return nil, fmt.Errorf("file %q is not listed in %s (tampered?)", n, ManifestName)
		}
	}
	for _, f := range m.Files {
		r, err := a.Open(f.Name)
		if err != nil {
			return nil, fmt.Errorf("file %q listed in %s is missing", f.Name, ManifestName)
		}
		if r.Size() != f.Size {
			return nil, fmt.Errorf("file %q: %d bytes, manifest says %d", f.Name, r.Size(), f.Size)
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return nil, fmt.Errorf("file %q: %w", f.Name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return nil, fmt.Errorf("file %q: checksum sha256:%s, manifest says sha256:%s (corrupted)", f.Name, got, f.SHA256)
		}
		if hexName, ok := strings.CutPrefix(f.Name, LayoutPrefix+"/blobs/sha256/"); ok && hexName != f.SHA256 {
			return nil, fmt.Errorf("blob %q holds content sha256:%s", f.Name, f.SHA256)
		}
	}
	e := &ExportFile{Manifest: m, Archive: a, Layout: a.Layout(LayoutPrefix)}
	ctx := context.Background()
	root, err := e.Layout.ResolveTag(ctx, m.Revision)
	if err != nil {
		return nil, fmt.Errorf("bundle index for %s: %w", m.Revision, err)
	}
	if root.Digest.String() != m.Bundle {
		return nil, fmt.Errorf("bundle index is %s, manifest says %s", root.Digest, m.Bundle)
	}
	raw, err = e.Layout.FetchManifest(ctx, root)
	if err != nil {
		return nil, err
	}
	if err := bundle.VerifyBytes(raw, root); err != nil {
		return nil, err
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		return nil, err
	}
	if b.Revision != m.Revision {
		return nil, fmt.Errorf("bundle records revision %s, manifest says %s", b.Revision, m.Revision)
	}
	e.Bundle, e.Root = b, root
	return e, nil
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
	platforms, _ := bundle.ParsePlatforms(strings.Join(m.Platforms, ","))
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
		if err := extractFile(ex.Archive, GitBundle, gitFile); err != nil {
			return nil, err
		}
		if err := run(ctx, o.GitDir, "bundle", "verify", "--quiet", gitFile); err != nil {
			return nil, inputErr(fmt.Errorf("git bundle does not apply to %s (wrong --since?): %w", o.GitDir, err))
		}
	}

	remote := func(repo string) (*transfer.Remote, error) {
		return transfer.NewRemote(o.Registry+"/"+repo, o.RemoteOptions...)
	}
	var jobs []transfer.Job
	for _, im := range ex.Bundle.Images {
		dst, err := remote(im.Ref.EdgeRepository())
		if err != nil {
			return nil, inputErr(err)
		}
		j := transfer.Job{Src: ex.Layout, Dst: dst, Root: im.Descriptor, Platforms: platforms}
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
	if err := preflight(ctx, ex.Layout, jobs); err != nil {
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
	st2, err := eng.Copy(ctx, transfer.Job{Src: ex.Layout, Dst: bdst, Root: ex.Root, Tags: []string{m.Revision}, Platforms: platforms})
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
func preflight(ctx context.Context, lay *transfer.Layout, jobs []transfer.Job) error {
	for _, j := range jobs {
		err := bundle.Walk(ctx, sourceFetcher{lay}, j.Root, j.Platforms, func(n bundle.Node) error {
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

func extractFile(a *transfer.TarArchive, name, out string) error {
	r, err := a.Open(name)
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
