package transfer

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ManifestSource serves one manifest held in memory (e.g. a bundle index
// built or already read and verified) as a Source. It holds no blobs: use it
// for RootOnly jobs.
func ManifestSource(raw []byte, d v1.Descriptor) Source { return memSource{raw: raw, d: d} }

type memSource struct {
	raw []byte
	d   v1.Descriptor
}

func (s memSource) Resolve(context.Context, string) (v1.Descriptor, error) { return s.d, nil }

func (s memSource) FetchManifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	if d.Digest != s.d.Digest {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, ErrNotFound)
	}
	return s.raw, nil
}

func (s memSource) OpenBlob(_ context.Context, d v1.Descriptor, _ int64) (io.ReadCloser, error) {
	return nil, fmt.Errorf("blob %s: %w", d.Digest, ErrNotFound)
}
