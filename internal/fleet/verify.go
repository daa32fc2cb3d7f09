package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/trust"
)

// maxKeyFile bounds a public key file read for --key (a PEM public key is
// well under 4 KiB even for RSA-4096).
const maxKeyFile = 64 << 10

// Keys say which public keys may sign which site's documents (`ballast
// fleet --key`). A key from a file is trusted for every site; a key from
// a directory only for the site it is named after.
type Keys struct {
	all     []trust.Key
	perSite map[string][]trust.Key
	dirs    []string
}

// LoadKeys reads the --key arguments. Each is either
//
//   - a PEM public key file ("PUBLIC KEY", as `cosign generate-key-pair`
//     writes cosign.pub): trusted for every site; or
//   - a directory holding <site>.pub (that site's key) and/or <site>/
//     directories of *.pub files (several keys of one site, for rotation):
//     each trusted for its site only. Other entries are ignored; a *.pub
//     or directory whose name is not a site name is an error.
//
// A signature by any key trusted for a site counts, so a key is rotated by
// giving the old and the new one until every site has published with the
// new one. Errors name the file.
func LoadKeys(paths []string) (*Keys, error) {
	k := &Keys{perSite: map[string][]trust.Key{}}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			key, err := readKey(p)
			if err != nil {
				return nil, err
			}
			k.all = append(k.all, key)
			continue
		}
		k.dirs = append(k.dirs, p)
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			full := filepath.Join(p, e.Name())
			switch site, isPub := strings.CutSuffix(e.Name(), ".pub"); {
			case e.IsDir():
				if err := ValidSiteName(e.Name()); err != nil {
					return nil, fmt.Errorf("%s: a directory of keys must be named after its site: %w", full, err)
				}
				files, err := filepath.Glob(filepath.Join(full, "*.pub"))
				if err != nil {
					return nil, err
				}
				if len(files) == 0 {
					return nil, fmt.Errorf("%s: no *.pub key in it", full)
				}
				for _, f := range files {
					key, err := readKey(f)
					if err != nil {
						return nil, err
					}
					k.perSite[e.Name()] = append(k.perSite[e.Name()], key)
				}
			case isPub:
				if err := ValidSiteName(site); err != nil {
					return nil, fmt.Errorf("%s: a key file in a directory must be named <site>.pub: %w", full, err)
				}
				key, err := readKey(full)
				if err != nil {
					return nil, err
				}
				k.perSite[site] = append(k.perSite[site], key)
			}
		}
	}
	if len(k.all) == 0 && len(k.perSite) == 0 {
		return nil, fmt.Errorf("no public key in %s", strings.Join(paths, ", "))
	}
	return k, nil
}

func readKey(path string) (trust.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return trust.Key{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return trust.Key{}, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxKeyFile {
		return trust.Key{}, fmt.Errorf("%s: not a regular file of at most %d bytes", path, maxKeyFile)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return trust.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return trust.ParsePublicKey(path, b)
}

// For returns the keys trusted for site's documents.
func (k *Keys) For(site string) []trust.Key {
	return append(append([]trust.Key{}, k.all...), k.perSite[site]...)
}

// Describe says which keys are given, for the summary line.
func (k *Keys) Describe() string {
	var parts []string
	if n := len(k.all); n > 0 {
		parts = append(parts, fmt.Sprintf("%d key(s) for every site", n))
	}
	if n := len(k.perSite); n > 0 {
		parts = append(parts, fmt.Sprintf("per-site keys for %d site(s)", n))
	}
	return strings.Join(parts, " and ")
}

// errUntrusted marks a document whose signature does not verify.
var errUntrusted = errors.New("untrusted")

// verifySignature checks the signature of the document whose layer is
// (digest, size) in the site's repository (base is its /v2/<name> URL):
// cosign's tag sha256-<hex>.sig of the document's DocumentManifest must
// hold a signature of that digest by one of keys. A missing, foreign,
// malformed or misdirected signature is errUntrusted with the reason; a
// failure to fetch is returned as it is. It returns the key that signed.
func verifySignature(ctx context.Context, client *http.Client, base, digest string, size int64, keys []trust.Key) (string, error) {
	if len(keys) == 0 {
		return "", fmt.Errorf("%w: no --key is trusted for this site", errUntrusted)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", err
	}
	dm, err := DocumentManifest(v1.Descriptor{Digest: h, Size: size})
	if err != nil {
		return "", err
	}
	subject, _, _ := v1.SHA256(strings.NewReader(string(dm)))
	tag := trust.SignatureTag(subject)
	raw, err := get(ctx, client, base+"/manifests/"+tag,
		"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json", 4<<20)
	if errors.Is(err, errNotFound) {
		return "", fmt.Errorf("%w: document not signed (no %s)", errUntrusted, tag)
	}
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	fetch := func(ctx context.Context, d v1.Descriptor, max int64) ([]byte, error) {
		return get(ctx, client, base+"/blobs/"+d.Digest.String(), "", max)
	}
	v, err := trust.Verify(ctx, subject, raw, keys, fetch)
	switch {
	case err == nil:
		return v.Key, nil
	case errors.Is(err, trust.ErrUnsigned), errors.Is(err, trust.ErrUntrustedKey),
		errors.Is(err, trust.ErrOtherDigest), errors.Is(err, trust.ErrMalformed):
		return "", fmt.Errorf("%w: %w", errUntrusted, err)
	}
	return "", fmt.Errorf("signature: %w", err)
}
