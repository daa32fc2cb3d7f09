// Package oci is ballast's generic OCI plumbing, apart from any policy:
// media types and descriptors, digest checks and a verifying reader, the walk
// over what an image index or manifest references, and platform selection.
// It knows nothing of bundles, registries' addresses or the edge; the
// registry client (oci/registryclient) and the OCI image layout (oci/layout)
// build on it, the copy engine (transfer) and the bundle format (bundle) use
// it. No network, no disk.
package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxManifestSize bounds every manifest and index read from outside, in
// bytes; Distribution refuses manifests above 4 MiB as well.
const MaxManifestSize = 4 << 20

// ErrNotFound is wrapped by every store (registry, layout, presence check)
// for absent content.
var ErrNotFound = errors.New("not found")

// ErrDigestMismatch is wrapped when content does not hash to its digest.
var ErrDigestMismatch = errors.New("digest mismatch")

// ErrNoRange is wrapped by a source (a registry, a file) that cannot start a
// blob at the offset asked for; the reader starts again from byte 0.
var ErrNoRange = errors.New("source cannot read from an offset")

// Location names a repository in a registry, for cross-repository mounts.
type Location struct {
	Registry   string // host[:port] as dialled
	Repository string
}

// Permanent marks err as not worth retrying (a retry layer such as the
// copy engine's gives up at once). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// CheckDigest accepts only well-formed sha256 digests, the one algorithm
// every registry supports.
func CheckDigest(h v1.Hash) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("digest %q: algorithm %q, want sha256", h.String(), h.Algorithm)
	}
	if len(h.Hex) != 64 || strings.Trim(h.Hex, "0123456789abcdef") != "" {
		return fmt.Errorf("digest %q: want 64 lowercase hex digits", h.String())
	}
	return nil
}

// VerifyBytes checks that raw has the digest and size of d.
func VerifyBytes(raw []byte, d v1.Descriptor) error {
	if int64(len(raw)) != d.Size {
		return fmt.Errorf("manifest %s: %d bytes, descriptor says %d", d.Digest, len(raw), d.Size)
	}
	sum := sha256.Sum256(raw)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if h != d.Digest {
		return fmt.Errorf("manifest %s: content has digest %s", d.Digest, h)
	}
	return nil
}

// IsIndex reports whether mt is an image index (OCI or Docker manifest list).
func IsIndex(mt types.MediaType) bool {
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}

// IsManifest reports whether mt is an image manifest (OCI or Docker schema 2).
func IsManifest(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}
