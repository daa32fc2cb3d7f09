// Package transfer is ballast's one copy engine. It moves OCI content
// (image manifests, indexes and blobs) from a Source to a Target, for bundle,
// export, import and the edge sync alike. It knows no policy: callers decide
// what to copy and where; transfer walks, skips what is present, verifies
// every byte against its digest as it streams, resumes interrupted blobs from
// a staging directory with HTTP Range requests, retries in one place, and
// writes children before parents so a root manifest is the commit point.
//
// It depends on the generic OCI layer only (internal/oci and its
// registryclient for error classes), never on the bundle format: the ends it
// copies between are a registry repository (oci/registryclient), an OCI image
// layout (oci/layout) or a manifest held in memory (ManifestSource).
package transfer

import (
	"context"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci"
)

// ErrNotFound is wrapped by ends for absent content: it is oci.ErrNotFound,
// named here for the engine's callers.
var ErrNotFound = oci.ErrNotFound

// ErrDigestMismatch is wrapped when content does not hash to its digest: it
// is oci.ErrDigestMismatch.
var ErrDigestMismatch = oci.ErrDigestMismatch

// Source is where content is read from. Content it returns is not trusted:
// the engine checks every manifest and blob against its descriptor.
type Source interface {
	// Resolve returns the descriptor of the manifest or index a tag or
	// digest ("sha256:…") names.
	Resolve(ctx context.Context, ref string) (v1.Descriptor, error)
	// FetchManifest returns the raw bytes of the manifest d.
	FetchManifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	// OpenBlob returns the bytes of blob d from offset on. Ends that can
	// seek (HTTP Range, files) start there; others may not implement
	// offsets > 0 and return an error wrapping ErrNoRange.
	OpenBlob(ctx context.Context, d v1.Descriptor, offset int64) (io.ReadCloser, error)
}

// ErrNoRange is returned by a Source that cannot start a blob at an offset:
// it is oci.ErrNoRange.
var ErrNoRange = oci.ErrNoRange

// Target is where content is written.
type Target interface {
	// BlobExists reports whether blob d is present with d's size.
	BlobExists(ctx context.Context, d v1.Descriptor) (bool, error)
	// WriteBlob stores blob d read from r. r yields exactly d.Size bytes
	// and then io.EOF only if they hash to d.Digest; otherwise it returns
	// an error, and the target must not make anything visible.
	WriteBlob(ctx context.Context, d v1.Descriptor, r io.Reader) error
	// ManifestExists reports whether manifest d is present by digest.
	ManifestExists(ctx context.Context, d v1.Descriptor) (bool, error)
	// ResolveTag returns the descriptor tag points to, or ErrNotFound.
	ResolveTag(ctx context.Context, tag string) (v1.Descriptor, error)
	// WriteManifest stores the verified manifest raw of descriptor d, by
	// digest when tag is empty, else under tag.
	WriteManifest(ctx context.Context, d v1.Descriptor, raw []byte, tag string) error
}

// Located is implemented by ends that live in a registry.
type Located interface {
	Location() oci.Location
}

// Mounter is implemented by targets that can link a blob from another
// repository of the same registry without moving its bytes.
type Mounter interface {
	Located
	// MountBlob links blob d from repository from; false means the
	// registry declined (the blob must then be copied).
	MountBlob(ctx context.Context, d v1.Descriptor, from string) (bool, error)
}

// Linker is implemented by targets whose registry can link a blob it
// already holds under any of its repositories into the target's
// repository, without the blob's bytes moving (the edge registry can: its
// blobs are stored once, repositories only link them). The engine asks
// before fetching a blob, so a blob on site never crosses the link again.
type Linker interface {
	// LinkBlob links blob d into the target's repository if the registry
	// holds it; false means it does not (the blob must be copied).
	LinkBlob(ctx context.Context, d v1.Descriptor) (bool, error)
}

// RefFetcher is implemented by sources that return the manifest a tag or
// digest names, with its descriptor, in one request (a registry's GET):
// resolving and fetching then cost one round trip instead of two. The
// engine verifies the bytes against the descriptor.
type RefFetcher interface {
	FetchRef(ctx context.Context, ref string) (v1.Descriptor, []byte, error)
}
