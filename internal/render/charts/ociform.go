package charts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/registry"
)

// OCIForm is a chart archive in the form `helm push` gives it in an OCI
// registry: an OCI image manifest whose config is the chart's Chart.yaml
// metadata as JSON and whose one layer is the archive, unchanged.
type OCIForm struct {
	Manifest []byte // the manifest's canonical JSON
	Digest   string // "sha256:<hex>" of Manifest
	Config   []byte // Chart.yaml metadata as JSON (registry.ConfigMediaType)
	Layer    []byte // the .tgz bytes as given (registry.ChartLayerMediaType)
}

// ToOCI converts a chart archive (.tgz) from an HTTP Helm repository into
// Helm's OCI form, as `helm push` would write it, with one difference that
// makes it deterministic: the created annotation is the modification time
// of Chart.yaml inside the archive (omitted when the archive has none),
// never the clock. The same archive always gives the same manifest digest.
// The archive is checked and loaded as LoadArchive does (limit bytes).
func ToOCI(data []byte, limit int64) (*OCIForm, error) {
	chrt, err := LoadArchive(data, limit)
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(chrt.Metadata)
	if err != nil {
		return nil, fmt.Errorf("chart %s: metadata: %w", chrt.Name(), err)
	}
	created, err := chartYAMLTime(data)
	if err != nil {
		return nil, fmt.Errorf("chart archive: %w", err)
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	m := struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{
		SchemaVersion: 2,
		MediaType:     "application/vnd.oci.image.manifest.v1+json",
		Config:        desc{registry.ConfigMediaType, sha256Of(config), int64(len(config))},
		Layers:        []desc{{registry.ChartLayerMediaType, sha256Of(data), int64(len(data))}},
		Annotations:   ociAnnotations(chrt.Metadata, created),
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &OCIForm{Manifest: raw, Digest: sha256Of(raw), Config: config, Layer: data}, nil
}

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ociAnnotations are the manifest annotations `helm push` writes (Helm's
// generateOCIAnnotations): description, title, version, url, created,
// source, authors, then the chart's own annotations except title and
// version.
func ociAnnotations(meta *chart.Metadata, created time.Time) map[string]string {
	a := map[string]string{}
	add := func(k, v string) {
		if strings.TrimSpace(v) != "" {
			a[k] = v
		}
	}
	add("org.opencontainers.image.description", meta.Description)
	add("org.opencontainers.image.title", meta.Name)
	add("org.opencontainers.image.version", meta.Version)
	add("org.opencontainers.image.url", meta.Home)
	if !created.IsZero() {
		add("org.opencontainers.image.created", created.UTC().Format(time.RFC3339))
	}
	if len(meta.Sources) > 0 {
		add("org.opencontainers.image.source", meta.Sources[0])
	}
	if len(meta.Maintainers) > 0 {
		var b strings.Builder
		for i, m := range meta.Maintainers {
			if m == nil {
				continue
			}
			b.WriteString(m.Name)
			if m.Email != "" {
				b.WriteString(" (" + m.Email + ")")
			}
			if i < len(meta.Maintainers)-1 {
				b.WriteString(", ")
			}
		}
		add("org.opencontainers.image.authors", b.String())
	}
	keys := make([]string, 0, len(meta.Annotations))
	for k := range meta.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "org.opencontainers.image.title" || k == "org.opencontainers.image.version" {
			continue
		}
		a[k] = meta.Annotations[k]
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

// chartYAMLTime returns the modification time of <top>/Chart.yaml in a
// chart archive (zero when the header has none).
func chartYAMLTime(data []byte) (time.Time, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return time.Time{}, fmt.Errorf("not gzip: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return time.Time{}, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("tar: %w", err)
		}
		clean := path.Clean(h.Name)
		if _, rest, ok := strings.Cut(clean, "/"); ok && rest == "Chart.yaml" {
			if h.ModTime.Unix() <= 0 {
				return time.Time{}, nil
			}
			return h.ModTime, nil
		}
	}
}
