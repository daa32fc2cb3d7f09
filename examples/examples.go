// Package examples embeds the example app repository, so `ballast demo`
// can build its upstream git repository from the binary alone, wherever it
// runs. The files themselves are the documentation (see README.md here).
package examples

import "embed"

// FS holds the example apps, charts and Argo CD Applications, with their
// paths relative to this directory (apps/…, charts/…, argocd/…).
//
//go:embed README.md all:apps all:charts all:argocd
var FS embed.FS
