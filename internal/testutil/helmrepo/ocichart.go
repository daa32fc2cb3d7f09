package helmrepo

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/imageref"
)

// Media types of Helm's OCI chart form (Helm's pkg/registry constants).
const (
	ConfigMediaType = "application/vnd.cncf.helm.config.v1+json"
	ChartMediaType  = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// OCIChart is a chart archive in Helm's OCI form, as the charts contract
// (docs/charts.md) says a bundle stores it: an OCI image manifest whose
// config blob is the chart's Chart.yaml metadata as JSON (what `helm push`
// writes) and whose one layer is the .tgz bytes unchanged, with no
// creation time, so the same archive always gives the same digest.
type OCIChart struct {
	v1.Image
	Tgz    []byte // the archive, the layer's content
	Config []byte // the config blob
}

// LoadOCIChart reads the archive at path (from Package) and returns its OCI
// form.
func LoadOCIChart(t testing.TB, path string) *OCIChart {
	t.Helper()
	tgz, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(tgz))
	if err != nil {
		t.Fatalf("load chart %s: %v", path, err)
	}
	cfg, err := json.Marshal(ch.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	c := &ociChartCore{cfg: cfg, tgz: tgz}
	cd, _, _ := v1.SHA256(bytes.NewReader(cfg))
	ld, _, _ := v1.SHA256(bytes.NewReader(tgz))
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Digest: cd, Size: int64(len(cfg))},
		Layers:        []v1.Descriptor{{MediaType: ChartMediaType, Digest: ld, Size: int64(len(tgz))}},
		Annotations: map[string]string{
			"org.opencontainers.image.title":   ch.Metadata.Name,
			"org.opencontainers.image.version": ch.Metadata.Version,
		},
	}
	if c.manifest, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img, err := partial.CompressedToImage(c)
	if err != nil {
		t.Fatal(err)
	}
	return &OCIChart{Image: img, Tgz: tgz, Config: cfg}
}

// PackageOCI packages c (Package) into a temporary directory and returns
// its OCI form.
func PackageOCI(t testing.TB, c Chart) *OCIChart {
	t.Helper()
	return LoadOCIChart(t, Package(t, t.TempDir(), c))
}

type ociChartCore struct {
	cfg, tgz, manifest []byte
}

func (c *ociChartCore) RawConfigFile() ([]byte, error)      { return c.cfg, nil }
func (c *ociChartCore) RawManifest() ([]byte, error)        { return c.manifest, nil }
func (c *ociChartCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func (c *ociChartCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, _, _ := v1.SHA256(bytes.NewReader(c.cfg)); d == h {
		return &blob{c.cfg, h, ConfigMediaType}, nil
	}
	return &blob{c.tgz, h, ChartMediaType}, nil
}

type blob struct {
	b  []byte
	d  v1.Hash
	mt types.MediaType
}

func (b *blob) Digest() (v1.Hash, error)            { return b.d, nil }
func (b *blob) Compressed() (io.ReadCloser, error)  { return io.NopCloser(bytes.NewReader(b.b)), nil }
func (b *blob) Size() (int64, error)                { return int64(len(b.b)), nil }
func (b *blob) MediaType() (types.MediaType, error) { return b.mt, nil }

// Entry is one entry of a bundle PushBundle writes: an image (v1.Image or
// v1.ImageIndex) stored as Ref, a chart or OCI source when Chart is set.
type Entry struct {
	Ref   string
	Image any // v1.Image or v1.ImageIndex
	Chart *bundle.Chart
}

// ChartEntry is the bundle entry of chart c from the HTTP Helm repository
// repoURL, stored at bundle.HelmRepoChartRef.
func ChartEntry(t testing.TB, repoURL string, c *OCIChart) Entry {
	t.Helper()
	var meta struct{ Name, Version string }
	if err := json.Unmarshal(c.Config, &meta); err != nil {
		t.Fatal(err)
	}
	ref, err := bundle.HelmRepoChartRef(repoURL, meta.Name, meta.Version)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Ref: ref.String(), Image: c.Image, Chart: &bundle.Chart{RepoURL: repoURL, Name: meta.Name, Version: meta.Version}}
}

// PushBundle writes every entry's content into the bundles repository repo
// (host:port/path, plain HTTP) by digest and then the bundle index of
// revision sha tagged sha, last, as `ballast bundle` lays a bundle out. It
// returns the index's descriptor.
func PushBundle(t testing.TB, repo, sha string, entries ...Entry) v1.Descriptor {
	t.Helper()
	b := bundle.Bundle{Revision: sha, Created: time.Unix(1700000000, 0)}
	for _, e := range entries {
		r, err := imageref.Parse(e.Ref)
		if err != nil {
			t.Fatal(err)
		}
		var d v1.Hash
		var mt types.MediaType
		var size int64
		switch x := e.Image.(type) {
		case v1.ImageIndex:
			d, _ = x.Digest()
			mt, _ = x.MediaType()
			size, _ = x.Size()
			dst, _ := name.NewDigest(repo+"@"+d.String(), name.Insecure)
			err = remote.WriteIndex(dst, x)
		case v1.Image:
			d, _ = x.Digest()
			mt, _ = x.MediaType()
			size, _ = x.Size()
			dst, _ := name.NewDigest(repo+"@"+d.String(), name.Insecure)
			err = remote.Write(dst, x)
		default:
			t.Fatalf("entry %s: %T is not an image or index", e.Ref, e.Image)
		}
		if err != nil {
			t.Fatalf("push %s: %v", e.Ref, err)
		}
		desc := v1.Descriptor{MediaType: mt, Size: size, Digest: d}
		if e.Chart != nil && !e.Chart.IsSource() {
			desc.ArtifactType = ConfigMediaType
		}
		b.Images = append(b.Images, bundle.Image{Ref: r, Descriptor: desc, Chart: e.Chart})
	}
	raw, desc, err := bundle.Build(b)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(repo+":"+sha, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatalf("push bundle index %s: %v", tag, err)
	}
	return desc
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
