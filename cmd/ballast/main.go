// Command ballast keeps Argo CD deployable on edge sites with intermittent links.
package main

import (
	"os"

	"github.com/ballast-dev/ballast/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
