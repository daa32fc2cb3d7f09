// Package trust signs and verifies OCI content the way cosign does with a
// key (no transparency log, no identity provider): a "simple signing"
// payload that names the signed manifest's digest, signed with an ECDSA,
// RSA or Ed25519 key, stored as an OCI image manifest whose one layer is
// the payload and whose layer annotation dev.cosignproject.cosign/signature
// holds the base64 signature. The manifest is tagged sha256-<hex>.sig in
// the signed manifest's repository (cosign's tag scheme) and names the
// signed manifest as its OCI 1.1 subject, so registries with the referrers
// API list it as a referrer too. `cosign verify --key K --insecure-ignore-tlog`
// accepts what Sign makes, and Verify accepts what `cosign sign --key K
// --tlog-upload=false` makes.
//
// The crypto is sigstore's (github.com/sigstore/sigstore: key files,
// signers, verifiers, the payload format); this package only assembles
// and reads the OCI side. It does no I/O: callers fetch manifests and
// blobs. It is edge-safe (no rendering, no cosign packages).
package trust

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/ballast-dev/ballast/internal/oci"
)

// Format constants shared with cosign (github.com/sigstore/cosign
// pkg/oci/static, pkg/types).
const (
	// SimpleSigningMediaType is the media type of a signature's payload layer.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of the payload on the
	// payload layer's descriptor.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// SignatureArtifactType marks a signature manifest for the referrers
	// API (what cosign's OCI 1.1 mode writes).
	SignatureArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
)

// Suffixes of cosign's tag scheme: for a manifest sha256:H, its
// signatures are tagged sha256-H.sig, its attestations sha256-H.att and its
// SBOMs sha256-H.sbom, in the same repository.
var Suffixes = []string{".sig", ".att", ".sbom"}

// maxPayload bounds a signature payload read from outside: a simple
// signing payload is a few hundred bytes.
const maxPayload = 64 << 10

// maxLayers bounds how many signatures one signature manifest may hold
// before Verify refuses it.
const maxLayers = 64

// Tag is the cosign tag of what is attached to manifest d with suffix
// (".sig", ".att", ".sbom"): "sha256-<hex><suffix>".
func Tag(d v1.Hash, suffix string) string { return d.Algorithm + "-" + d.Hex + suffix }

// SignatureTag is Tag(d, ".sig").
func SignatureTag(d v1.Hash) string { return Tag(d, ".sig") }

// Errors of Verify, wrapped with the detail; each says why a signature
// does not count.
var (
	// ErrUnsigned: no signature for the manifest.
	ErrUnsigned = errors.New("not signed")
	// ErrUntrustedKey: signatures present, none by a trusted key.
	ErrUntrustedKey = errors.New("not signed by a trusted key")
	// ErrOtherDigest: a trusted key signed, but another manifest digest.
	ErrOtherDigest = errors.New("signature is for another digest")
	// ErrMalformed: the signature manifest or payload cannot be read.
	ErrMalformed = errors.New("malformed signature")
	// ErrPayloadNotFound is wrapped by a BlobFetcher for a payload the
	// source does not have: that signature is skipped (the others of the
	// manifest still count), as one that does not verify is.
	ErrPayloadNotFound = errors.New("signature payload not found")
)

// Signer signs manifests with one private key.
type Signer struct {
	s signature.Signer
}

// LoadSigner reads a PEM private key as cosign writes it (`cosign
// generate-key-pair`: "ENCRYPTED SIGSTORE PRIVATE KEY" or the older
// "ENCRYPTED COSIGN PRIVATE KEY", scrypt + secretbox) or an unencrypted
// PKCS#8/EC/PKCS#1 key, with password for an encrypted one (cosign reads it
// from COSIGN_PASSWORD). Signatures use SHA-256, as cosign's do.
func LoadSigner(pemBytes, password []byte) (*Signer, error) {
	key, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, err := signature.LoadSigner(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return &Signer{s: s}, nil
}

// PublicKeyPEM is the signer's public key in PEM ("PUBLIC KEY"), the form
// `cosign verify --key` and the edge config's trust.publicKeys take.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	pub, err := s.s.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// Signature is a signature manifest and the blobs it references, ready to
// be written next to the manifest it signs.
type Signature struct {
	Manifest   []byte
	Descriptor v1.Descriptor
	// Blobs are the config and the payload, by digest.
	Blobs map[v1.Hash][]byte
	// Tag is the cosign tag to write the manifest under.
	Tag string
}

// Sign signs the manifest subject stored in repository dockerRef
// ("registry.example.com/fleet/apps-bundles": recorded in the payload as
// cosign does, not checked by verifiers) and returns the signature
// manifest: an OCI image manifest with one simple signing layer, subject
// set to the signed manifest.
func (s *Signer) Sign(dockerRef string, subject v1.Descriptor) (*Signature, error) {
	p, err := json.Marshal(payload.SimpleContainerImage{Critical: payload.Critical{
		Identity: payload.Identity{DockerReference: dockerRef},
		Image:    payload.Image{DockerManifestDigest: subject.Digest.String()},
		Type:     payload.CosignSignatureType,
	}})
	if err != nil {
		return nil, err
	}
	sig, err := s.s.SignMessage(bytes.NewReader(p))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	layer := static.NewLayer(p, SimpleSigningMediaType)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}})
	if err != nil {
		return nil, err
	}
	subj := v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest}
	img = mutate.Subject(img, subj).(v1.Image)
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cfgDigest, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	h, n, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &Signature{
		Manifest:   raw,
		Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: n, Digest: h},
		Blobs:      map[v1.Hash][]byte{cfgDigest: cfg, ld: p},
		Tag:        SignatureTag(subject.Digest),
	}, nil
}

// Key is one trusted public key.
type Key struct {
	// Name says where the key came from in reports (a file path).
	Name string
	v    signature.Verifier
}

// ParsePublicKey reads a PEM public key ("PUBLIC KEY", as `cosign
// generate-key-pair` writes cosign.pub) of a kind cosign signs with
// (ECDSA, RSA, Ed25519). name is used in reports.
func ParsePublicKey(name string, pemBytes []byte) (Key, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %w", name, err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return Key{}, fmt.Errorf("public key %s: %w", name, err)
	}
	return Key{Name: name, v: v}, nil
}

// BlobFetcher returns the bytes of blob d, at most max bytes; the caller
// of Verify supplies it (a registry, an OCI layout). Bytes are checked
// against d's digest here.
type BlobFetcher func(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error)

// SignedLayer is one signature of a signature manifest, as read from it.
type SignedLayer struct {
	Payload   v1.Descriptor
	Signature []byte
}

// ParseSignatureManifest reads a signature manifest from outside input and
// returns its signatures: its layers of SimpleSigningMediaType with a
// signature annotation. Layers of other types are ignored (cosign does the
// same); a manifest with none is ErrUnsigned. Errors wrap ErrMalformed or
// ErrUnsigned; bad input never panics.
func ParseSignatureManifest(raw []byte) ([]SignedLayer, error) {
	if len(raw) > oci.MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes exceeds %d", ErrMalformed, len(raw), oci.MaxManifestSize)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: not a JSON image manifest: %w", ErrMalformed, err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schemaVersion %d, want 2", ErrMalformed, m.SchemaVersion)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%w: %d layers, at most %d", ErrMalformed, len(m.Layers), maxLayers)
	}
	var out []SignedLayer
	for i, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		if err := oci.CheckDigest(l.Digest); err != nil {
			return nil, fmt.Errorf("%w: layers[%d]: %w", ErrMalformed, i, err)
		}
		if l.Size <= 0 || l.Size > maxPayload {
			return nil, fmt.Errorf("%w: layers[%d]: payload size %d out of range (1..%d)", ErrMalformed, i, l.Size, maxPayload)
		}
		b64, ok := l.Annotations[SignatureAnnotation]
		if !ok {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) == 0 {
			return nil, fmt.Errorf("%w: layers[%d]: annotation %s is not base64", ErrMalformed, i, SignatureAnnotation)
		}
		out = append(out, SignedLayer{Payload: v1.Descriptor{MediaType: l.MediaType, Size: l.Size, Digest: l.Digest}, Signature: sig})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the signature manifest holds no signed payload", ErrUnsigned)
	}
	return out, nil
}

// ParsePayload reads a simple signing payload and returns the manifest
// digest it claims. Errors wrap ErrMalformed.
func ParsePayload(raw []byte) (v1.Hash, error) {
	if len(raw) > maxPayload {
		return v1.Hash{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrMalformed, len(raw), maxPayload)
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(raw, &p); err != nil {
		return v1.Hash{}, fmt.Errorf("%w: payload is not JSON: %w", ErrMalformed, err)
	}
	if p.Critical.Type != payload.CosignSignatureType {
		return v1.Hash{}, fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, p.Critical.Type, payload.CosignSignatureType)
	}
	h, err := v1.NewHash(p.Critical.Image.DockerManifestDigest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%w: payload digest %q: %w", ErrMalformed, p.Critical.Image.DockerManifestDigest, err)
	}
	if err := oci.CheckDigest(h); err != nil {
		return v1.Hash{}, fmt.Errorf("%w: payload digest: %w", ErrMalformed, err)
	}
	return h, nil
}

// Verified says which key signed.
type Verified struct {
	Key string // Key.Name
}

// Verify checks that the signature manifest raw holds a signature of
// manifest subject by one of keys: the payload's bytes match its digest,
// the signature over them verifies with a key, and the payload claims
// subject's digest. It returns the first key that signed. Errors wrap
// ErrUnsigned, ErrUntrustedKey, ErrOtherDigest or ErrMalformed and say
// what was found; an error fetching a payload is returned as it is (the
// caller may retry).
func Verify(ctx context.Context, subject v1.Hash, raw []byte, keys []Key, fetch BlobFetcher) (Verified, error) {
	if len(keys) == 0 {
		return Verified{}, errors.New("no trusted public keys configured")
	}
	layers, err := ParseSignatureManifest(raw)
	if err != nil {
		return Verified{}, err
	}
	var reasons []string
	otherDigest, signed, missing := false, false, false
	for _, l := range layers {
		p, err := fetch(ctx, l.Payload, maxPayload)
		if errors.Is(err, ErrPayloadNotFound) {
			missing = true
			reasons = append(reasons, fmt.Sprintf("payload %s: not found", l.Payload.Digest))
			continue
		}
		if err != nil {
			return Verified{}, fmt.Errorf("signature payload %s: %w", l.Payload.Digest, err)
		}
		if err := oci.VerifyBytes(p, l.Payload); err != nil {
			reasons = append(reasons, fmt.Sprintf("payload %s: %v", l.Payload.Digest, err))
			continue
		}
		var by *Key
		for i := range keys {
			if keys[i].v.VerifySignature(bytes.NewReader(l.Signature), bytes.NewReader(p)) == nil {
				by = &keys[i]
				break
			}
		}
		if by == nil {
			continue
		}
		signed = true
		claimed, err := ParsePayload(p)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if claimed != subject {
			otherDigest = true
			reasons = append(reasons, fmt.Sprintf("key %s signed %s", by.Name, claimed))
			continue
		}
		return Verified{Key: by.Name}, nil
	}
	detail := ""
	if len(reasons) > 0 {
		detail = " (" + strings.Join(reasons, "; ") + ")"
	}
	switch {
	case otherDigest:
		return Verified{}, fmt.Errorf("%w: want %s%s", ErrOtherDigest, subject, detail)
	case signed, missing:
		return Verified{}, fmt.Errorf("%w: %d signature(s), none readable%s", ErrMalformed, len(layers), detail)
	}
	return Verified{}, fmt.Errorf("%w: %d signature(s), none verifies with the %d trusted key(s)%s", ErrUntrustedKey, len(layers), len(keys), detail)
}
