package install

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// ImageSpec says what goes into ballast's own image.
type ImageSpec struct {
	// Ref is the image name written into the tarball, e.g.
	// "ghcr.io/ballast-dev/ballast:v0.1.0".
	Ref string
	// Binary is the ballast executable to ship; it must be statically
	// linked (CGO_ENABLED=0), as release builds are.
	Binary string
	// Git is the git executable whose binary, remote helpers and shared
	// libraries are copied in. The default value is "/usr/bin/git".
	Git string
	// GitExecPath is git's compiled-in exec path. The default value is
	// "/usr/lib/git-core".
	GitExecPath string
	// GitLFS is the git-lfs executable copied in (with its shared
	// libraries) when it exists: the mirror fetches LFS objects with it.
	// The default value is "/usr/bin/git-lfs"; a missing one is left out.
	GitLFS string
	// Root is prepended to every host path read (tests point it at a
	// fake root). The default value is "/".
	Root string
}

// libDirs are searched, in order, for DT_NEEDED libraries, as the dynamic
// loader's built-in trusted directories are on Debian.
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// WriteAirgapImage writes ballast's own image as a docker-archive tarball
// that k3s imports from agent/images/ at start, so the edge daemon and the
// gate run with no registry reachable. The image holds the ballast binary
// and the git CLI with exactly the shared libraries it links.
func WriteAirgapImage(spec ImageSpec, out string) error {
	img, err := BuildImage(spec)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", spec.Ref, err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.Rename(tmp, out)
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// BuildImage assembles the image described by spec.
func BuildImage(spec ImageSpec) (v1.Image, error) {
	if spec.Git == "" {
		spec.Git = "/usr/bin/git"
	}
	if spec.GitExecPath == "" {
		spec.GitExecPath = "/usr/lib/git-core"
	}
	if spec.GitLFS == "" {
		spec.GitLFS = "/usr/bin/git-lfs"
	}
	if spec.Root == "" {
		spec.Root = "/"
	}
	if err := checkStatic(spec.Binary); err != nil {
		return nil, err
	}
	l := &layout{root: spec.Root, files: map[string]entry{}}
	l.dir("/tmp", 0o1777)
	l.dir("/var/lib/ballast", 0o755)
	l.file("/usr/local/bin/ballast", spec.Binary, 0o755)
	l.content("/etc/passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644)
	l.content("/etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644)
	if _, err := os.Stat(l.host("/etc/ssl/certs/ca-certificates.crt")); err == nil {
		l.file("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt", 0o644)
	}
	if err := l.elf("/usr/bin/git", spec.Git); err != nil {
		return nil, err
	}
	// Builtins are dispatched on argv[0]; remote helpers are programs of
	// their own that git finds in its exec path.
	for _, n := range []string{"git", "git-upload-pack"} {
		l.symlink(path.Join(spec.GitExecPath, n), "/usr/bin/git")
	}
	helper := path.Join(spec.GitExecPath, "git-remote-http")
	if err := l.elf(helper, helper); err != nil {
		return nil, err
	}
	l.symlink(path.Join(spec.GitExecPath, "git-remote-https"), helper)
	if _, err := os.Stat(l.host(spec.GitLFS)); err == nil {
		// git finds `git lfs` as git-lfs on its PATH.
		if err := l.elf("/usr/bin/git-lfs", spec.GitLFS); err != nil {
			return nil, err
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	layer, err := l.layer()
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "ballast install --airgap-images", Created: v1.Time{Time: time.Unix(0, 0)}}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config.Entrypoint = []string{"/usr/local/bin/ballast"}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "ballast"}
	return mutate.ConfigFile(img, cf)
}

// checkStatic refuses a dynamically linked ballast: the image has no libc
// of the build machine's version for it.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("ballast binary %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("ballast binary %s is dynamically linked: build it with CGO_ENABLED=0 (make build)", p)
		}
	}
	return nil
}

type entry struct {
	mode  int64
	src   string // host path to copy, or
	data  []byte // literal content, or
	link  string // symlink target, or
	isDir bool
}

type layout struct {
	root  string
	files map[string]entry
	err   error
}

func (l *layout) host(p string) string { return filepath.Join(l.root, filepath.FromSlash(p)) }

func (l *layout) dir(p string, mode int64) { l.files[p] = entry{mode: mode, isDir: true} }

func (l *layout) file(p, src string, mode int64) { l.files[p] = entry{mode: mode, src: src} }

func (l *layout) content(p, s string, mode int64) { l.files[p] = entry{mode: mode, data: []byte(s)} }

func (l *layout) symlink(p, target string) { l.files[p] = entry{mode: 0o777, link: target} }

// elf adds the executable at host path src as p, with its program
// interpreter and every shared library it needs, transitively.
func (l *layout) elf(p, src string) error {
	l.file(p, src, 0o755)
	seen := map[string]bool{}
	var walk func(string) error
	walk = func(file string) error {
		f, err := elf.Open(l.host(file))
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, err := io.ReadAll(prog.Open())
				if err != nil {
					return fmt.Errorf("%s: interpreter: %w", file, err)
				}
				interp := strings.TrimRight(string(b), "\x00")
				if !seen[interp] {
					seen[interp] = true
					l.file(interp, interp, 0o755)
				}
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: libraries: %w", file, err)
		}
		for _, lib := range libs {
			found := ""
			for _, d := range libDirs {
				cand := path.Join(d, lib)
				if st, err := os.Stat(l.host(cand)); err == nil && !st.IsDir() {
					found = cand
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which is in none of %v", file, lib, libDirs)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			l.file(found, found, 0o644)
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(src)
}

func (l *layout) layer() (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(l.files))
	for p := range l.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	epoch := time.Unix(0, 0)
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		e := l.files[p]
		if err := mkdirs(p); err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(p, "/")
		h := &tar.Header{Name: name, Mode: e.mode, ModTime: epoch}
		var body []byte
		switch {
		case e.isDir:
			if dirs[p] {
				continue
			}
			dirs[p] = true
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.data != nil:
			h.Typeflag, body = tar.TypeReg, e.data
		default:
			b, err := os.ReadFile(l.host(e.src))
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", e.src, err)
			}
			h.Typeflag, body = tar.TypeReg, b
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}
