package bundle

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/oci"
)

// Annotations of a bundle entry that is attached to an image of the same
// bundle rather than an image itself (docs/trust.md): a cosign signature,
// attestation or SBOM (stored under cosign's tag sha256-<hex>.sig, .att,
// .sbom in the image's repository), or an OCI 1.1 referrer of the image.
const (
	// AnnotationAttachedKind is one of the Attached* kinds.
	AnnotationAttachedKind = "io.ballast.attached.kind"
	// AnnotationAttachedSubject is the digest of the image it belongs to.
	AnnotationAttachedSubject = "io.ballast.attached.subject"
)

// Kinds of attachments.
const (
	AttachedSignature   = "sig"      // cosign signature, tag sha256-<hex>.sig
	AttachedAttestation = "att"      // cosign attestation, tag sha256-<hex>.att
	AttachedSBOM        = "sbom"     // cosign SBOM, tag sha256-<hex>.sbom
	AttachedReferrer    = "referrer" // an OCI 1.1 referrer (manifest with subject), by digest
)

// Attachment says of which image an attached entry is, and what it is.
type Attachment struct {
	Kind    string
	Subject v1.Hash
}

// String names the attachment as reports do: "signature of sha256:…".
func (a Attachment) String() string {
	what := map[string]string{AttachedSignature: "signature", AttachedAttestation: "attestation", AttachedSBOM: "SBOM", AttachedReferrer: "referrer"}[a.Kind]
	return what + " of " + a.Subject.String()
}

func (a Attachment) check() error {
	switch a.Kind {
	case AttachedSignature, AttachedAttestation, AttachedSBOM, AttachedReferrer:
	default:
		return fmt.Errorf("annotation %s %q: want sig, att, sbom or referrer", AnnotationAttachedKind, a.Kind)
	}
	if err := oci.CheckDigest(a.Subject); err != nil {
		return fmt.Errorf("annotation %s: %w", AnnotationAttachedSubject, err)
	}
	return nil
}

func (a Attachment) annotations() map[string]string {
	return map[string]string{AnnotationAttachedKind: a.Kind, AnnotationAttachedSubject: a.Subject.String()}
}

func parseAttachment(ann map[string]string) (*Attachment, error) {
	kind, hasKind := ann[AnnotationAttachedKind]
	subj, hasSubj := ann[AnnotationAttachedSubject]
	if !hasKind && !hasSubj {
		return nil, nil
	}
	if !hasKind || !hasSubj {
		return nil, fmt.Errorf("annotations %s and %s go together", AnnotationAttachedKind, AnnotationAttachedSubject)
	}
	h, err := v1.NewHash(subj)
	if err != nil {
		return nil, fmt.Errorf("annotation %s %q: %w", AnnotationAttachedSubject, subj, err)
	}
	a := &Attachment{Kind: kind, Subject: h}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}
