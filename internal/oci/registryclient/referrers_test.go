package registryclient

import (
	"strings"
	"testing"
)

func TestParseReferrers(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	good := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,"digest":"` + d + `","artifactType":"application/spdx+json"}]}`
	ds, err := ParseReferrers([]byte(good))
	if err != nil || len(ds) != 1 || ds[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("ParseReferrers = %+v, %v", ds, err)
	}
	for _, in := range []string{"", "{", `{"schemaVersion":1}`,
		strings.Replace(good, "application/vnd.oci.image.manifest.v1+json", "text/plain", 1),
		strings.Replace(good, d, "sha256:zz", 1),
		strings.Replace(good, `"size":10`, `"size":-1`, 1)} {
		if _, err := ParseReferrers([]byte(in)); err == nil {
			t.Errorf("ParseReferrers(%.60q) accepted", in)
		}
	}
}

func FuzzParseReferrers(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,"digest":"sha256:` + strings.Repeat("0", 64) + `"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ds, err := ParseReferrers(raw)
		if err == nil {
			for _, d := range ds {
				if d.Size <= 0 {
					t.Fatalf("accepted size %d", d.Size)
				}
			}
		}
	})
}
