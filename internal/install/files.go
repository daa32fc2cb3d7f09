package install

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ballast-dev/ballast/internal/config"
)

const (
	// configFilesSecret holds the files the edge config names
	// (credentials, trust keys, the fleet signing key), mounted read-only
	// at configFilesMount; the in-cluster config names them there.
	configFilesSecret = "ballast-edge-files"
	configFilesMount  = "/etc/ballast-files"
	// maxConfigFile bounds one such file: credentials and PEM keys are a
	// few KB; anything near this is the wrong file.
	maxConfigFile = 256 << 10
)

// fileRewrite is one file-valued field of the edge config and where the
// in-cluster config names its file instead.
type fileRewrite struct {
	keys []any // config.FileField.Keys
	path string
}

// configFiles reads every file the edge config c names, except
// api.tokenFile (the API token Secret replaces it), into one Secret, and
// returns it with the rewrites that point the in-cluster config at the
// mounted copies. Relative paths are relative to o.ConfigDir. A file that
// cannot be read is an error naming the field: the daemon would fail on it
// at start. A nil Secret means the config names no file.
func (o *Options) configFiles(c *config.Config) (*corev1.Secret, []fileRewrite, error) {
	data := map[string][]byte{}
	keyOf := map[string]string{} // resolved path → Secret key, so a file named twice is carried once
	var rewrites []fileRewrite
	for _, f := range c.FileFields() {
		if f.Name == "api.tokenFile" {
			continue
		}
		p := f.Value
		if !filepath.IsAbs(p) && o.ConfigDir != "" {
			p = filepath.Join(o.ConfigDir, p)
		}
		key, seen := keyOf[p]
		if !seen {
			b, err := readConfigFile(p)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w (install carries every file the config names into the cluster, as Secret %s)", f.Name, err, configFilesSecret)
			}
			key = secretKey(len(keyOf), p)
			keyOf[p] = key
			data[key] = b
		}
		rewrites = append(rewrites, fileRewrite{keys: f.Keys, path: configFilesMount + "/" + key})
	}
	if len(data) == 0 {
		return nil, nil, nil
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(configFilesSecret, o.Namespace),
		Data:       data,
	}, rewrites, nil
}

func readConfigFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigFile {
		return nil, fmt.Errorf("%s: over %d KiB", p, maxConfigFile>>10)
	}
	return b, nil
}

// secretKey is the i-th file's key in the Secret: a Secret key holds only
// [-._a-zA-Z0-9] (at most 253), so "02-cosign.pub" from the base name.
func secretKey(i int, p string) string {
	base := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, filepath.Base(p))
	if len(base) > 64 {
		base = base[:64]
	}
	return fmt.Sprintf("%02d-%s", i, base)
}

// setField sets the value at keys (map keys and list indexes, outermost
// first) in a config document decoded from YAML.
func setField(doc map[string]any, keys []any, v string) error {
	var cur any = doc
	for i, k := range keys {
		last := i == len(keys)-1
		switch node := cur.(type) {
		case map[string]any:
			s, ok := k.(string)
			if !ok {
				return fmt.Errorf("key %v: not a map key", k)
			}
			if last {
				node[s] = v
				return nil
			}
			cur = node[s]
		case []any:
			n, ok := k.(int)
			if !ok || n < 0 || n >= len(node) {
				return fmt.Errorf("index %v: not in the list", k)
			}
			if last {
				node[n] = v
				return nil
			}
			cur = node[n]
		default:
			return fmt.Errorf("key %v: not a map or list", k)
		}
	}
	return errors.New("empty key path")
}
