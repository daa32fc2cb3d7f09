package delta_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ballast-dev/ballast/internal/delta"
	"github.com/ballast-dev/ballast/internal/testutil/layergen"
	"github.com/ballast-dev/ballast/internal/testutil/realtest"
)

// roleEnv runs the test binary as one side of a delta (bench_test.go):
// "make" (bundle time) or "apply" (the edge), so each side's CPU time and
// peak memory (getrusage of that process alone) can be measured.
const roleEnv = "BALLAST_DELTA_BENCH_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		dir := os.Getenv("BALLAST_DELTA_BENCH_DIR")
		err := runRole(role, dir)
		// Peak RSS of this process: getrusage's ru_maxrss of a child
		// started with vfork counts the parent's pages, VmHWM does not.
		if st, rerr := os.ReadFile("/proc/self/status"); rerr == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "VmHWM:") {
					_ = os.WriteFile(filepath.Join(dir, "peak-"+role), []byte(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, "VmHWM:"), "kB"))), 0o644)
				}
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			if errors.Is(err, delta.ErrNotReproducible) {
				os.Exit(3)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func readDesc(p string) (v1.Descriptor, error) {
	var d v1.Descriptor
	b, err := os.ReadFile(p)
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	return d, err
}

func runRole(role, dir string) error {
	ctx := context.Background()
	oldBlob, err := os.ReadFile(filepath.Join(dir, "old.blob"))
	if err != nil {
		return err
	}
	switch role {
	case "make":
		newBlob, err := os.ReadFile(filepath.Join(dir, "new.blob"))
		if err != nil {
			return err
		}
		od, err := readDesc(filepath.Join(dir, "old.json"))
		if err != nil {
			return err
		}
		nd, err := readDesc(filepath.Join(dir, "new.json"))
		if err != nil {
			return err
		}
		d, patch, err := delta.Make(ctx, od, oldBlob, nd, newBlob, "example.com/app")
		if err != nil {
			return err
		}
		raw, _, err := delta.BuildManifest(d)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "patch"), patch, 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644)
	case "apply":
		raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			return err
		}
		d, err := delta.ParseManifest(raw)
		if err != nil {
			return err
		}
		pf, err := os.Open(filepath.Join(dir, "patch"))
		if err != nil {
			return err
		}
		defer pf.Close()
		base, err := delta.LoadBase(ctx, d.Base, bytes.NewReader(oldBlob))
		if err != nil {
			return err
		}
		if err := delta.ProbeBase(ctx, d, base); err != nil {
			return err
		}
		out, err := os.Create(filepath.Join(dir, "made.blob"))
		if err != nil {
			return err
		}
		defer out.Close()
		return delta.Reconstruct(ctx, d, base, pf, out)
	}
	return fmt.Errorf("role %q", role)
}

// side runs one role in a child process and returns its CPU time and peak
// RSS.
func side(b *testing.B, role, dir string) (cpu time.Duration, peak int64, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, "BALLAST_DELTA_BENCH_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		b.Fatalf("%s: %v", role, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	kb, perr := os.ReadFile(filepath.Join(dir, "peak-"+role))
	if perr != nil {
		b.Fatalf("%s: no peak memory recorded: %v", role, perr)
	}
	peak, _ = strconv.ParseInt(string(kb), 10, 64)
	peak <<= 10
	if err != nil {
		if cmd.ProcessState.ExitCode() == 3 {
			return cpu, peak, delta.ErrNotReproducible
		}
		b.Fatalf("%s: %v\n%s", role, err, out)
	}
	return cpu, peak, nil
}

// BenchmarkDeltas measures, per realistic update kind and compression,
// the bytes a delta puts on the link (patch and delta manifest) over the
// changed layer's compressed bytes (the layer-level baseline, 1.00x),
// and the CPU time and peak memory of making it (bundle time) and
// applying it (the edge: base verification and probe, patch, recompression),
// each in a process of its own. A layer no recipe reproduces goes whole
// (whole=1, link/layer=1). Run:
//
//	go test -run '^$' -bench BenchmarkDeltas -benchtime 1x ./internal/delta/
func BenchmarkDeltas(b *testing.B) {
	type kind struct {
		up    layergen.Update
		gnu   bool // compressed by GNU gzip, which no Go library reproduces
		zstds []bool
	}
	kinds := []kind{
		{up: layergen.GoService(b, true), zstds: []bool{false, true}},
		{up: layergen.GoService(b, false), zstds: []bool{false, true}},
		{up: layergen.Rootfs(b, 48<<20), zstds: []bool{false, true}},
		{up: layergen.Assets(b, 200), zstds: []bool{false, true}},
		{up: layergen.Assets(b, 200), gnu: true, zstds: []bool{false}},
	}
	for _, k := range kinds {
		for _, zstd := range k.zstds {
			name := k.up.Kind + "/gzip"
			if zstd {
				name = k.up.Kind + "/zstd"
			}
			if k.gnu {
				name = k.up.Kind + "/gnu-gzip"
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				var oldL, newL layergen.Layer
				if k.gnu {
					oldL, newL = gnuGzip(b, k.up.Old), gnuGzip(b, k.up.New)
				} else {
					oldL, newL = layergen.Compress(b, k.up.Old, zstd), layergen.Compress(b, k.up.New, zstd)
				}
				for n, v := range map[string][]byte{"old.blob": oldL.Blob, "new.blob": newL.Blob} {
					if err := os.WriteFile(filepath.Join(dir, n), v, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				for n, d := range map[string]v1.Descriptor{"old.json": oldL.Desc, "new.json": newL.Desc} {
					j, _ := json.Marshal(d)
					if err := os.WriteFile(filepath.Join(dir, n), j, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				var mcpu, acpu time.Duration
				var mpeak, apeak int64
				whole := false
				for b.Loop() {
					var err error
					mcpu, mpeak, err = side(b, "make", dir)
					if errors.Is(err, delta.ErrNotReproducible) {
						whole = true
						continue
					}
					acpu, apeak, _ = side(b, "apply", dir)
				}
				link := newL.Desc.Size
				if !whole {
					made, err := os.ReadFile(filepath.Join(dir, "made.blob"))
					if err != nil || !bytes.Equal(made, newL.Blob) {
						b.Fatalf("the edge made other bytes than the layer: %v", err)
					}
					p, _ := os.Stat(filepath.Join(dir, "patch"))
					m, _ := os.Stat(filepath.Join(dir, "manifest.json"))
					link = p.Size() + m.Size()
				}
				w := 0.0
				if whole {
					w = 1
				}
				b.ReportMetric(float64(newL.Desc.Size)/(1<<20), "layer-MiB")
				b.ReportMetric(float64(link)/float64(newL.Desc.Size), "link/layer")
				b.ReportMetric(mcpu.Seconds(), "bundle-cpu-s")
				b.ReportMetric(float64(mpeak)/(1<<20), "bundle-peak-MiB")
				b.ReportMetric(acpu.Seconds(), "edge-cpu-s")
				b.ReportMetric(float64(apeak)/(1<<20), "edge-peak-MiB")
				b.ReportMetric(w, "whole")
			})
		}
	}
}

// gnuGzip compresses a tar with GNU gzip -n -6, as `docker save | gzip` or
// a shell pipeline in CI would.
func gnuGzip(b *testing.B, content []byte) layergen.Layer {
	dir := b.TempDir()
	p := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		b.Fatal(err)
	}
	gz := realtest.LookPath(b, "gzip", "apt-get install gzip")
	if out, err := exec.Command(gz, "-n", "-6", p).CombinedOutput(); err != nil {
		b.Fatalf("gzip: %v %s", err, out)
	}
	blob, err := os.ReadFile(p + ".gz")
	if err != nil {
		b.Fatal(err)
	}
	return layergen.Layer{Desc: descOf(types.OCILayer, blob), Blob: blob}
}
