// Package delta makes and applies exact sub-layer deltas: a patch that
// turns the uncompressed content of a layer the edge holds (the base) into
// the content of a new layer (the target), and a recipe that compresses
// that content into the target's blob byte for byte. The edge ends with the
// blob upstream has, digest verified, or takes the whole blob.
//
// Deltas work on uncompressed content, since compressed streams do not
// re-synchronize after a change. The patch is a zstd frame of the target's
// content compressed with the base's content as raw dictionary (what
// `zstd --patch-from` does, in github.com/klauspost/compress). The recipe
// (Recipe) names compressor, level and header fields; Detect finds it at
// bundle time by recompressing and comparing, and a layer no recipe
// reproduces goes whole.
//
// A delta is published as an OCI artifact next to the bundle: an image
// manifest of artifactType ArtifactType whose one layer is the patch and
// whose annotations name target, base and recipe; the revision's deltas are
// listed by an image index tagged IndexTag(revision) in the bundles
// repository. Any registry carries them.
//
// The package is edge-safe: no network, no disk, no rendering. Callers
// supply bytes and readers; Reconstruct verifies every digest on the way
// (base blob, base content, target content, target blob).
package delta
