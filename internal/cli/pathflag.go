package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"
)

// pathValue is a flag naming a file or directory. It is made absolute when
// parsed, against the directory ballast was started in, so that every
// later use means the same place: a relative path handed to a git child
// that runs in another directory (export --git, a temp dir next to
// --output, ...) would otherwise land somewhere else or nowhere.
type pathValue struct{ p *string }

func (v pathValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v pathValue) Set(s string) error {
	abs, err := absPath(s)
	if err != nil {
		return err
	}
	*v.p = abs
	return nil
}

func (v pathValue) Type() string { return "path" }

// pathVar defines a file or directory flag (see pathValue). The default
// value is kept as given.
func pathVar(f *pflag.FlagSet, p *string, name, value, usage string) {
	*p = value
	f.Var(pathValue{p}, name, usage)
}

// absPath makes a file or directory argument absolute; "" stays "" (flag
// not given) and "-" stays "-" (stdin/stdout where a command takes it).
func absPath(s string) (string, error) {
	if s == "" || s == "-" {
		return s, nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", s, err)
	}
	return abs, nil
}
