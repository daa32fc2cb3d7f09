// Package sneakernet carries a revision to a site that has no link: export
// writes one file holding the revision's bundle (an OCI image layout) and a
// git bundle of the repository, with a manifest of checksums; import
// verifies all of it before loading the images into the edge registry (the
// bundle index last, as sync does) and the git objects into the mirror.
package sneakernet

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/atomicfile"
	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/exportfile"
	"github.com/ballast-dev/ballast/internal/gitdeps"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/oci/layout"
	"github.com/ballast-dev/ballast/internal/oci/registryclient"
	"github.com/ballast-dev/ballast/internal/ocitar"
	"github.com/ballast-dev/ballast/internal/progress"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// ErrInput marks errors in what the user gave or in the file read (exit 2).
var ErrInput = errors.New("bad input")

func inputErr(err error) error { return fmt.Errorf("%w: %w", ErrInput, err) }

// ExportOptions for Export.
type ExportOptions struct {
	Bundle    string // REGISTRY/REPO:SHA
	GitDir    string // repository whose refs are bundled; "" for none
	Output    string // the tar file to write
	Since     string // SHA whose bundle (and git objects) the site has
	Platforms oci.Platforms
	// DepsMirror, when set, is an edge's HTTP base (http://edge:8080):
	// the submodule and remote base commits the bundle records are fetched
	// from its mirror (<base>/git/<id>.git) instead of their upstreams, and
	// LFS objects from its LFS API unless LFSURL says otherwise.
	DepsMirror string
	// LFSURL is the LFS endpoint the objects missing from GitDir's LFS
	// storage are fetched from. The default value is the DepsMirror's
	// endpoint of the repository when DepsMirror is set, else
	// <source>.git/info/lfs of the bundle's source (http(s) only).
	LFSURL string

	RemoteOptions []registryclient.Option
	Progress      progress.Func // copy progress; nil for none
	Log           *slog.Logger
}

// ExportResult summarizes an export.
type ExportResult struct {
	Revision  string `json:"revision"`
	Since     string `json:"since,omitempty"`
	Output    string `json:"output"`
	Bundle    string `json:"bundle"`
	Bytes     int64  `json:"bytes"` // size of the file written
	Files     int    `json:"files"`
	BlobBytes int64  `json:"blobBytes"` // bytes under oci/blobs (manifests included)
	GitBytes  int64  `json:"gitBytes"`
	// GitDepsBytes is the size of the dependency repositories' git
	// bundles, holding GitDepCommits commits.
	GitDepsBytes  int64 `json:"gitDepsBytes,omitempty"`
	GitDepCommits int   `json:"gitDepCommits,omitempty"`
	// LFSObjects and LFSBytes count the LFS objects carried.
	LFSObjects int            `json:"lfsObjects,omitempty"`
	LFSBytes   int64          `json:"lfsBytes,omitempty"`
	Stats      transfer.Stats `json:"stats"`
	// Signed reports whether the bundle index's signature was carried.
	Signed bool `json:"signed,omitempty"`
}

// SplitBundleRef splits "registry/repo:SHA" into the repository and the SHA.
func SplitBundleRef(s string) (repo, sha string, err error) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i:], "/") {
		return "", "", fmt.Errorf("bundle %q: want REGISTRY/REPO:SHA", s)
	}
	repo, sha = s[:i], s[i+1:]
	if !exportfile.ShaRE.MatchString(sha) {
		return "", "", fmt.Errorf("bundle %q: tag %q is not a full 40-hex commit SHA", s, sha)
	}
	return repo, sha, nil
}

// Export writes the export file (format: package exportfile).
func Export(ctx context.Context, o ExportOptions) (*ExportResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	repo, sha, err := SplitBundleRef(o.Bundle)
	if err != nil {
		return nil, inputErr(err)
	}
	if o.Since != "" && !exportfile.ShaRE.MatchString(o.Since) {
		return nil, inputErr(fmt.Errorf("base revision %q: want a full 40-hex commit SHA", o.Since))
	}
	if o.Output == "" {
		return nil, inputErr(errors.New("no output file given"))
	}
	// git runs in GitDir: a relative work dir or output would be taken
	// relative to it. Pin both to the caller's working directory.
	for _, p := range []*string{&o.Output, &o.GitDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return nil, inputErr(err)
			}
			*p = abs
		}
	}
	src, err := registryclient.New(repo, o.RemoteOptions...)
	if err != nil {
		return nil, inputErr(err)
	}
	eng, err := transfer.New(append([]transfer.Option{transfer.WithLogger(o.Log)}, transfer.CommandOptions(0, o.Progress)...)...)
	if err != nil {
		return nil, err
	}
	root, b, err := readBundle(ctx, eng, src, sha)
	if err != nil {
		return nil, err
	}
	// What the site already has: every blob of the --since bundle.
	have := map[v1.Hash]bool{}
	var sinceBundle *bundle.Bundle
	if o.Since != "" {
		sroot, sb, err := readBundle(ctx, eng, src, o.Since)
		sinceBundle = sb
		if err != nil {
			return nil, fmt.Errorf("base revision: %w", err)
		}
		err = oci.Walk(ctx, sourceFetcher{src}, sroot, o.Platforms, func(n oci.Node) error {
			if n.Raw == nil {
				have[n.Descriptor.Digest] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("bundle of the base revision: %w", err)
		}
	}

	work, err := os.MkdirTemp(filepath.Dir(o.Output), ".ballast-export-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	lay, err := layout.New(filepath.Join(work, exportfile.LayoutPrefix))
	if err != nil {
		return nil, err
	}
	st, err := eng.Copy(ctx, transfer.Job{Src: src, Dst: &haveTarget{lay, have}, Root: root, Tags: []string{sha}, Platforms: o.Platforms})
	if err != nil {
		return nil, fmt.Errorf("copy bundle: %w", err)
	}
	// The bundle index's signature (cosign's tag beside it), when it has
	// one, travels too: the edge's trust policy checks it on import.
	sigTag := trust.SignatureTag(root.Digest)
	sig, err := eng.Resolve(ctx, src, sigTag)
	switch {
	case err == nil:
		sst, err := eng.Copy(ctx, transfer.Job{Src: src, Dst: lay, Root: sig, Tags: []string{sigTag}})
		if err != nil {
			return nil, fmt.Errorf("copy bundle signature: %w", err)
		}
		st.BytesRead += sst.BytesRead
		st.BytesWritten += sst.BytesWritten
		st.BlobsCopied += sst.BlobsCopied
		st.ManifestsWritten += sst.ManifestsWritten
	case !errors.Is(err, transfer.ErrNotFound):
		return nil, fmt.Errorf("bundle signature %s: %w", sigTag, err)
	}
	res := &ExportResult{Revision: sha, Since: o.Since, Output: o.Output, Bundle: root.Digest.String(), Stats: st}
	res.Signed = err == nil

	m := exportfile.Manifest{Format: exportfile.Format, Revision: sha, Since: o.Since, Repository: repo, Source: b.Source, Bundle: root.Digest.String()}
	for _, p := range o.Platforms {
		m.Platforms = append(m.Platforms, p.String())
	}
	if o.GitDir != "" {
		ok, err := gitBundle(ctx, o.GitDir, sha, o.Since, filepath.Join(work, filepath.FromSlash(exportfile.GitBundle)))
		if err != nil {
			return nil, err
		}
		m.HasGit = ok
	}
	tmpRoot, err := os.MkdirTemp(filepath.Dir(o.Output), ".ballast-export-tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmpRoot)
	m.GitDeps, res.GitDepCommits, err = exportGitDeps(ctx, work, tmpRoot, o.DepsMirror, b, sinceBundle)
	if err != nil {
		return nil, err
	}
	if o.GitDir != "" {
		ep, err := lfsEndpoint(o, b)
		if err != nil {
			return nil, err
		}
		if m.LFS, err = exportLFS(ctx, work, tmpRoot, o.GitDir, o.Since, ep); err != nil {
			return nil, err
		}
	}
	res.LFSObjects = len(m.LFS)
	if len(m.GitDeps) == 0 && len(m.LFS) == 0 {
		m.Format = exportfile.FormatV1 // readable by importers that predate v2
	}
	err = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".tmp-") {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		f, err := fileSum(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		m.Files = append(m.Files, f)
		switch {
		case f.Name == exportfile.GitBundle:
			res.GitBytes = f.Size
		case strings.HasPrefix(f.Name, exportfile.GitDepsPrefix+"/"):
			res.GitDepsBytes += f.Size
		case strings.HasPrefix(f.Name, exportfile.LFSPrefix+"/"):
			res.LFSBytes += f.Size
		case strings.HasPrefix(f.Name, exportfile.LayoutPrefix+"/blobs/"):
			res.BlobBytes += f.Size
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	exportfile.SortFiles(m.Files)
	res.Files = len(m.Files) + 1
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	n, err := writeExportTar(work, raw, o.Output)
	if err != nil {
		return nil, err
	}
	res.Bytes = n
	return res, nil
}

// lfsEndpoint is where LFS objects missing locally are fetched from (see
// ExportOptions.LFSURL); "" when there is none.
func lfsEndpoint(o ExportOptions, b *bundle.Bundle) (string, error) {
	if o.LFSURL != "" {
		return o.LFSURL, nil
	}
	if b.Source == "" {
		return "", nil
	}
	if o.DepsMirror != "" {
		id, err := gitdeps.ID(b.Source)
		if err != nil {
			return "", inputErr(err)
		}
		return strings.TrimSuffix(o.DepsMirror, "/") + "/git/" + id + ".git/info/lfs", nil
	}
	if !strings.HasPrefix(b.Source, "http://") && !strings.HasPrefix(b.Source, "https://") {
		return "", nil
	}
	u := strings.TrimSuffix(b.Source, "/")
	if !strings.HasSuffix(u, ".git") {
		u += ".git"
	}
	return u + "/info/lfs", nil
}

// readBundle resolves and parses the bundle tagged sha.
func readBundle(ctx context.Context, eng *transfer.Engine, src transfer.Source, sha string) (v1.Descriptor, *bundle.Bundle, error) {
	d, err := eng.Resolve(ctx, src, sha)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle %s: %w", sha, err)
	}
	raw, err := eng.FetchManifest(ctx, src, d)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle %s: %w", sha, err)
	}
	b, err := bundle.Parse(raw)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if b.Revision != sha {
		return v1.Descriptor{}, nil, fmt.Errorf("bundle tagged %s records revision %s", sha, b.Revision)
	}
	return d, b, nil
}

type sourceFetcher struct{ src transfer.Source }

func (f sourceFetcher) FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	return f.src.FetchManifest(ctx, d)
}

// haveTarget reports the blobs the site already has as present, so the
// engine leaves them out of an incremental export.
type haveTarget struct {
	transfer.Target
	have map[v1.Hash]bool
}

func (h *haveTarget) BlobExists(ctx context.Context, d v1.Descriptor) (bool, error) {
	if h.have[d.Digest] {
		return true, nil
	}
	return h.Target.BlobExists(ctx, d)
}

// gitBundle writes a git bundle of the branches and tags (excluding what
// since reaches); false when there is nothing new.
func gitBundle(ctx context.Context, dir, sha, since, out string) (bool, error) {
	if err := run(ctx, dir, "cat-file", "-e", sha+"^{commit}"); err != nil {
		return false, inputErr(fmt.Errorf("git %s does not have revision %s: %w", dir, sha, err))
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return false, err
	}
	args := []string{"bundle", "create", "--quiet", out, "--branches", "--tags"}
	if since != "" {
		if err := run(ctx, dir, "cat-file", "-e", since+"^{commit}"); err != nil {
			return false, inputErr(fmt.Errorf("git %s does not have the base revision %s: %w", dir, since, err))
		}
		args = append(args, "^"+since)
	}
	err := run(ctx, dir, args...)
	if err != nil && strings.Contains(err.Error(), "empty bundle") {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func run(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return nil
}

func fileSum(p, name string) (exportfile.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return exportfile.File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return exportfile.File{}, err
	}
	return exportfile.File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeExportTar writes the tree and then the manifest, crash-safely.
func writeExportTar(work string, manifest []byte, out string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(out), ".tmp-"+filepath.Base(out)+"-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := ocitar.WriteTree(tw, work, "", nil); err != nil {
		return 0, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: exportfile.ManifestName, Mode: 0o644, Size: int64(len(manifest)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
		return 0, err
	}
	if _, err := tw.Write(manifest); err != nil {
		return 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := atomicfile.Rename(f.Name(), out); err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
