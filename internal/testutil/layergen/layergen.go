// Package layergen builds realistic image layers and their updates for the
// delta tests and benchmarks, with real tools: a Go service compiled by
// `go build` with one source line changed, a root filesystem assembled
// from files of this machine (/usr/lib, /usr/share/doc) with a few files
// changed as a package upgrade would, and a static-assets tree with one
// file added and one changed. Layers are compressed by
// go-containerregistry's layer code (pkg/v1/tarball), as ko and crane do:
// gzip at its default level, or zstd.
package layergen

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// File is one regular file of a layer.
type File struct {
	Name    string
	Data    []byte
	Mode    int64
	ModTime time.Time
}

// epoch is the fixed modification time of files that did not change, as
// reproducible builders (ko, SOURCE_DATE_EPOCH) write.
var epoch = time.Unix(1700000000, 0).UTC()

// Tar returns the uncompressed tar of files, in the order given.
func Tar(files []File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(f.Name); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, f := range files {
		mt := f.ModTime
		if mt.IsZero() {
			mt = epoch
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: mode, Size: int64(len(f.Data)), ModTime: mt, Format: tar.FormatPAX})
		_, _ = tw.Write(f.Data)
	}
	_ = tw.Close()
	return buf.Bytes()
}

// Layer is a layer blob with its descriptor.
type Layer struct {
	Desc v1.Descriptor
	Blob []byte
}

// Compress turns an uncompressed tar into a layer with
// go-containerregistry's tarball.LayerFromOpener, as ko and crane build
// layers: gzip (its default, BestSpeed) or zstd (its default level).
func Compress(t testing.TB, content []byte, zstd bool) Layer {
	t.Helper()
	opts := []tarball.LayerOption{}
	mt := types.OCILayer
	if zstd {
		mt = types.OCILayerZStd
		opts = append(opts, tarball.WithCompression(compression.ZStd))
	}
	opts = append(opts, tarball.WithMediaType(mt))
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	h, n, _ := v1.SHA256(bytes.NewReader(blob))
	return Layer{Desc: v1.Descriptor{MediaType: mt, Digest: h, Size: n}, Blob: blob}
}

// Image is an OCI image of the given layers for linux/amd64.
func Image(t testing.TB, layers ...Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		img, err = mutate.AppendLayers(img, static.NewLayer(l.Blob, l.Desc.MediaType))
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Update is one realistic update: the layer's content before and after.
type Update struct {
	Kind     string
	Old, New []byte // uncompressed tars
}

// goService is a small HTTP service; line is the one source line that
// changes between builds.
const goService = `package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"time"
)

type status struct {
	Version string    ` + "`json:\"version\"`" + `
	Started time.Time ` + "`json:\"started\"`" + `
}

var started = time.Now()

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status{Version: os.Getenv("VERSION"), Started: started})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		%s
	})
	log.Fatal(http.ListenAndServe(":8080", mux))
}
`

// GoService builds the Go service twice with `go build -trimpath` (the
// second time with one line changed) and returns its layer's update: the
// binary at app/server. With strip the binary is linked with -s -w (no
// symbol table, no DWARF), as most image builds do; without, Go's linker
// writes zlib-compressed DWARF sections, whose bytes change throughout
// after any change (kind "go-service-dwarf").
func GoService(t testing.TB, strip bool) Update {
	t.Helper()
	goBin := realtest.LookPath(t, "go", "install Go (https://go.dev/dl)")
	build := func(line string) []byte {
		dir := t.TempDir()
		src := fmt.Sprintf(goService, line)
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/service\n\ngo 1.22\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ldflags := "-ldflags=-buildid="
		if strip {
			ldflags = "-ldflags=-s -w -buildid="
		}
		cmd := exec.Command(goBin, "build", "-trimpath", ldflags, "-o", "server", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "server"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := build(`http.Error(w, "not found", http.StatusNotFound)`)
	nw := build(`http.Error(w, "no such page: "+r.URL.Path, http.StatusNotFound)`)
	kind := "go-service"
	if !strip {
		kind = "go-service-dwarf"
	}
	return Update{Kind: kind,
		Old: Tar([]File{{Name: "app/server", Data: old, Mode: 0o755}}),
		New: Tar([]File{{Name: "app/server", Data: nw, Mode: 0o755}})}
}

// Rootfs assembles a root filesystem layer from regular files of this
// machine under /usr/lib/x86_64-linux-gnu and /usr/share/doc (sorted, files
// up to 1 MiB, until about limit bytes), then changes three of them as a
// package upgrade does (a library rebuilt with a few bytes changed and a
// little code added, a changelog with an entry added, a config file
// edited) with new modification times.
func Rootfs(t testing.TB, limit int64) Update {
	t.Helper()
	var files []File
	var total int64
	for _, root := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/share/doc"} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || total >= limit {
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil || fi.Size() == 0 || fi.Size() > 1<<20 {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			files = append(files, File{Name: strings.TrimPrefix(p, "/"), Data: b, Mode: int64(fi.Mode().Perm())})
			total += int64(len(b))
			return nil
		})
	}
	if total < limit/2 {
		realtest.Missing(t, fmt.Sprintf("%d bytes of files under /usr/lib/x86_64-linux-gnu and /usr/share/doc (found %d)", limit/2, total), "a Debian system with its libraries and docs")
	}
	changed := append([]File(nil), files...)
	rng := rand.New(rand.NewPCG(1, 2))
	now := epoch.Add(24 * time.Hour)
	// A library rebuilt: a few scattered bytes change, a little is added.
	lib := pick(changed, func(f File) bool { return strings.Contains(f.Name, ".so") && len(f.Data) > 64<<10 })
	d := append([]byte(nil), changed[lib].Data...)
	for range 16 {
		d[rng.IntN(len(d))] ^= 0x5a
	}
	extra := make([]byte, 2048)
	for i := range extra {
		extra[i] = byte(rng.IntN(256))
	}
	changed[lib] = File{Name: changed[lib].Name, Data: append(d, extra...), Mode: changed[lib].Mode, ModTime: now}
	// A changelog entry.
	doc := pick(changed, func(f File) bool {
		return strings.HasPrefix(f.Name, "usr/share/doc/") && !strings.HasSuffix(f.Name, ".gz")
	})
	changed[doc] = File{Name: changed[doc].Name, Data: append([]byte("pkg (1.2.4-1) unstable; urgency=medium\n\n  * New upstream release.\n\n"), changed[doc].Data...), Mode: changed[doc].Mode, ModTime: now}
	// One more file edited in place.
	other := pick(changed, func(f File) bool {
		return len(f.Data) > 4096 && !strings.Contains(f.Name, ".so") && f.Name != changed[doc].Name
	})
	od := append([]byte(nil), changed[other].Data...)
	copy(od[len(od)/2:], []byte("upgraded"))
	changed[other] = File{Name: changed[other].Name, Data: od, Mode: changed[other].Mode, ModTime: now}
	return Update{Kind: "rootfs", Old: Tar(files), New: Tar(changed)}
}

// pick returns the index of the middle file that ok accepts.
func pick(files []File, ok func(File) bool) int {
	var idx []int
	for i, f := range files {
		if ok(f) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return 0
	}
	return idx[len(idx)/2]
}

// Assets builds a static-assets layer (n generated CSS, JS and HTML-like
// text files and some incompressible images) and its update: one file
// added, one changed.
func Assets(t testing.TB, n int) Update {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields("color margin padding border display flex grid function return const let var export import default div span class button header footer nav section article main aside width height")
	text := func(size int) []byte {
		var b bytes.Buffer
		for b.Len() < size {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(8) == 0 {
				b.WriteString(";\n")
			} else {
				b.WriteByte(' ')
			}
		}
		return b.Bytes()
	}
	var files []File
	for i := range n {
		var data []byte
		name := fmt.Sprintf("srv/www/static/%03d", i)
		switch i % 4 {
		case 0, 1:
			data, name = text(8<<10+rng.IntN(64<<10)), name+".js"
		case 2:
			data, name = text(4<<10+rng.IntN(16<<10)), name+".css"
		case 3:
			data = make([]byte, 16<<10+rng.IntN(96<<10))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			name += ".png"
		}
		files = append(files, File{Name: name, Data: data})
	}
	now := epoch.Add(24 * time.Hour)
	changed := append([]File(nil), files...)
	c := changed[n/2]
	nd := append(append([]byte(nil), c.Data[:len(c.Data)/2]...), text(2048)...)
	changed[n/2] = File{Name: c.Name, Data: append(nd, c.Data[len(c.Data)/2:]...), ModTime: now}
	changed = append(changed, File{Name: "srv/www/static/zz-new.js", Data: text(24 << 10), ModTime: now})
	return Update{Kind: "assets", Old: Tar(files), New: Tar(changed)}
}
