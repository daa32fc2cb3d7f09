package charts_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/ballast-dev/ballast/internal/render/charts"
	"github.com/ballast-dev/ballast/internal/testutil/helmrepo"
	"github.com/ballast-dev/ballast/internal/testutil/regserver"
)

// ToOCI gives what `helm push` gives (same config bytes, same layer, same
// annotations but the created time), and the same digest every time.
func TestToOCIMatchesHelmPush(t *testing.T) {
	reg := regserver.Start(t, regserver.Options{})
	c := helmrepo.Chart{Name: "cert-manager", Version: "1.15.0+meta", Image: "quay.io/jetstack/c:v1"}
	pushChart(t, reg.Addr, c)
	data, err := os.ReadFile(helmrepo.Package(t, t.TempDir(), c))
	if err != nil {
		t.Fatal(err)
	}
	form, err := charts.ToOCI(data, charts.DefaultMaxChartBytes)
	if err != nil {
		t.Fatal(err)
	}
	again, err := charts.ToOCI(data, charts.DefaultMaxChartBytes)
	if err != nil || again.Digest != form.Digest || !bytes.Equal(again.Manifest, form.Manifest) {
		t.Fatalf("not deterministic: %s then %s (%v)", form.Digest, again.Digest, err)
	}

	ref, err := name.ParseReference(reg.Addr+"/charts/cert-manager:1.15.0_meta", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var helm, ours v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &helm); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(form.Manifest, &ours); err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	helmConfig, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(helmConfig, form.Config) {
		t.Errorf("config\n%s\nhelm push wrote\n%s", form.Config, helmConfig)
	}
	if ours.Config.MediaType != registry.ConfigMediaType || ours.Config.Digest != helm.Config.Digest || ours.Config.Size != helm.Config.Size {
		t.Errorf("config descriptor %+v, helm %+v", ours.Config, helm.Config)
	}
	if len(ours.Layers) != 1 || ours.Layers[0].MediaType != registry.ChartLayerMediaType || ours.Layers[0].Digest.String() != sha256Bytes(data) {
		t.Errorf("layers %+v, want one chart layer of the archive's digest", ours.Layers)
	}
	delete(helm.Annotations, "org.opencontainers.image.created")
	created, ok := ours.Annotations["org.opencontainers.image.created"]
	delete(ours.Annotations, "org.opencontainers.image.created")
	if !ok || created == "" {
		t.Errorf("no created annotation (Chart.yaml has a modification time)")
	}
	if len(helm.Annotations) != len(ours.Annotations) {
		t.Errorf("annotations %v, helm %v", ours.Annotations, helm.Annotations)
	}
	for k, v := range helm.Annotations {
		if ours.Annotations[k] != v {
			t.Errorf("annotation %s = %q, helm %q", k, ours.Annotations[k], v)
		}
	}
}

func sha256Bytes(b []byte) string {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h.String()
}

// FuzzToOCI: outside archives never panic ToOCI; what it accepts has a
// manifest whose digest is its bytes' and whose layer is the input.
func FuzzToOCI(f *testing.F) {
	data, err := os.ReadFile(helmrepo.Package(f, f.TempDir(), helmrepo.Chart{Name: "a", Version: "1.0.0", Image: "x"}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		form, err := charts.ToOCI(data, 1<<20)
		if err != nil {
			return
		}
		if sha256Bytes(form.Manifest) != form.Digest || !bytes.Equal(form.Layer, data) {
			t.Fatalf("manifest digest %s or layer does not match", form.Digest)
		}
	})
}
