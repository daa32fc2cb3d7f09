package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/bundle"
	"github.com/ballast-dev/ballast/internal/oci"
	"github.com/ballast-dev/ballast/internal/transfer"
	"github.com/ballast-dev/ballast/internal/trust"
)

// StateUntrusted is the state of a revision whose bundle the trust policy
// refuses (edge config trust: unsigned, signed by no trusted key, or the
// signature of another digest): nothing of it is tagged or indexed, and
// the reason is in RevisionStatus.Error.
const StateUntrusted = "untrusted"

// UntrustedError says why the trust policy refuses a bundle. It is
// permanent for the bundle as it is upstream: a new signature (or a new
// key in the config) is needed.
type UntrustedError struct {
	Reason string
}

func (e *UntrustedError) Error() string { return "untrusted: " + e.Reason }

// IsUntrusted reports whether err is a refusal by the trust policy.
func IsUntrusted(err error) bool {
	var u *UntrustedError
	return errors.As(err, &u)
}

// checkSignature verifies the cosign signature (tag sha256-<hex>.sig in
// src) of manifest subject with the edge's trusted keys. It returns the
// signature manifest's descriptor, or a zero descriptor when subject is
// unsigned and the policy lets that pass. A refusal is an
// *UntrustedError; any other error (the link, the registry) is not the
// signature's fault and the caller retries.
func (s *Syncer) checkSignature(ctx context.Context, src transfer.Source, what string, subject v1.Descriptor, required bool) (v1.Descriptor, error) {
	start := time.Now()
	defer func() { s.metrics.signatureSeconds.Observe(time.Since(start).Seconds()) }()
	tag := trust.SignatureTag(subject.Digest)
	d, raw, err := s.engine.ResolveManifest(ctx, src, tag)
	if errors.Is(err, transfer.ErrNotFound) {
		if !required {
			return v1.Descriptor{}, nil
		}
		s.metrics.signatureChecks.WithLabelValues("untrusted").Inc()
		return v1.Descriptor{}, &UntrustedError{Reason: fmt.Sprintf("%s %s is not signed (no %s beside it)", what, subject.Digest, tag)}
	}
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("read signature %s: %w", tag, err)
	}
	if err := oci.VerifyBytes(raw, d); err != nil {
		return v1.Descriptor{}, fmt.Errorf("signature %s: %w", tag, err)
	}
	if err := s.verifySignature(ctx, src, what, subject.Digest, raw); err != nil {
		return v1.Descriptor{}, err
	}
	return d, nil
}

// trustBundle applies the trust policy to a bundle read from src (the
// upstream bundles repository, an export file, or the edge's own copy):
// the index's signature and, with trust.requireImageSignatures, each
// image's. It returns the index's signature descriptor (zero when unsigned
// and allowed) for the caller to land beside the index. Without a trust
// policy it does nothing.
func (s *Syncer) trustBundle(ctx context.Context, src transfer.Source, b *bundle.Bundle, root v1.Descriptor) (v1.Descriptor, error) {
	t := s.o.Config.Trust
	if t == nil {
		return v1.Descriptor{}, nil
	}
	sig, err := s.checkSignature(ctx, src, "bundle index of "+short(b.Revision), root, t.SignaturesRequired())
	if err != nil || !t.RequireImageSignatures {
		return sig, err
	}
	return sig, s.trustImages(ctx, src, b)
}

// trustImages checks that every image of b is signed by a trusted key:
// its signature must be carried in the bundle (an entry with
// bundle.Attachment kind "sig" for its digest) and verify. The signatures
// are read from src, where the bundle's entries are.
func (s *Syncer) trustImages(ctx context.Context, src transfer.Source, b *bundle.Bundle) error {
	sigs := map[v1.Hash]bundle.Image{}
	for _, im := range b.Images {
		if im.Attached != nil && im.Attached.Kind == bundle.AttachedSignature {
			sigs[im.Attached.Subject] = im
		}
	}
	for _, im := range b.Images {
		if im.Chart != nil || im.Attached != nil {
			continue
		}
		sig, ok := sigs[im.Descriptor.Digest]
		if !ok {
			s.metrics.signatureChecks.WithLabelValues("untrusted").Inc()
			return &UntrustedError{Reason: fmt.Sprintf("image %s: no signature carried in the bundle (trust.requireImageSignatures)", im.Ref)}
		}
		raw, err := s.engine.FetchManifest(ctx, src, sig.Descriptor)
		if err != nil {
			return fmt.Errorf("signature of image %s: %w", im.Ref, err)
		}
		start := time.Now()
		err = s.verifySignature(ctx, src, "image "+im.Ref.String(), im.Descriptor.Digest, raw)
		s.metrics.signatureSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			return err
		}
	}
	return nil
}

// verifySignature checks the signature manifest raw, read from src, for
// manifest subject with the trusted keys and counts the result. A refusal
// is an *UntrustedError naming what; other errors are the source's.
func (s *Syncer) verifySignature(ctx context.Context, src transfer.Source, what string, subject v1.Hash, raw []byte) error {
	fetch := func(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
		rc, err := src.OpenBlob(ctx, d, 0)
		if errors.Is(err, transfer.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", trust.ErrPayloadNotFound, err)
		}
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, max+1))
	}
	v, err := trust.Verify(ctx, subject, raw, s.o.Config.Trust.Keys(), fetch)
	if err != nil {
		for _, class := range []error{trust.ErrUnsigned, trust.ErrUntrustedKey, trust.ErrOtherDigest, trust.ErrMalformed} {
			if errors.Is(err, class) {
				s.metrics.signatureChecks.WithLabelValues("untrusted").Inc()
				return &UntrustedError{Reason: fmt.Sprintf("%s %s: %v", what, subject, err)}
			}
		}
		return fmt.Errorf("signature of %s: %w", what, err)
	}
	s.metrics.signatureChecks.WithLabelValues("trusted").Inc()
	s.log.Debug("signature verified", "what", what, "digest", subject, "key", v.Key)
	return nil
}

// trustLocal applies the trust policy to a bundle already complete in
// the edge registry (landed before the policy or a key changed).
func (s *Syncer) trustLocal(ctx context.Context, bundleRepo string, b *bundle.Bundle, root v1.Descriptor) error {
	if s.o.Config.Trust == nil {
		return nil
	}
	src, err := s.local(bundleRepo)
	if err != nil {
		return err
	}
	_, err = s.trustBundle(ctx, src, b, root)
	return err
}

// markUntrusted records a refusal by the trust policy.
func (s *Syncer) markUntrusted(id, sha string, err error) {
	reason := err.Error()
	var u *UntrustedError
	if errors.As(err, &u) {
		reason = u.Reason
	}
	s.status.update(id, sha, func(r *RevisionStatus) {
		r.State, r.Error, r.Rate, r.ETASeconds = StateUntrusted, reason, 0, 0
	})
	s.log.Warn("bundle refused by the trust policy", "repo", id, "revision", sha, "reason", err)
}
