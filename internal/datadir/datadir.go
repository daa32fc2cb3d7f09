// Package datadir is the one definition of the edge data dir's layout:
// where each owner (git mirror, registry, sync, deployed store, locks,
// credentials) keeps its files under dataDir. Owners compute their paths
// here; nothing else joins paths under dataDir.
package datadir

import "path/filepath"

// Layout names the files and directories under one data dir. The zero
// value is not useful; use Of.
type Layout struct {
	// Root is the data dir itself (config `dataDir`).
	Root string
}

// Of returns the layout of the data dir root.
func Of(root string) Layout { return Layout{Root: root} }

// Git is the git mirror's root: one bare repository per upstream at
// <host>/<path>.git, plus .locks/ and .tmp/.
func (l Layout) Git() string { return filepath.Join(l.Root, "git") }

// Registry is the edge registry's storage (Distribution's filesystem
// layout) and its http-secret.
func (l Layout) Registry() string { return filepath.Join(l.Root, "registry") }

// Staging holds sync's partial blob downloads, resumable across restarts.
func (l Layout) Staging() string { return filepath.Join(l.Root, "sync", "staging") }

// Deltas holds sync's sub-layer delta work: fetched delta manifests and
// patches (an OCI image layout) and layers made from them, until a pass
// leaves every wanted revision complete.
func (l Layout) Deltas() string { return filepath.Join(l.Root, "sync", "deltas") }

// Deployed is the file of revisions recorded as deployed.
func (l Layout) Deployed() string { return filepath.Join(l.Root, "state", "deployed.json") }

// LinkBudget is the link budget ledger (internal/linkplan).
func (l Layout) LinkBudget() string { return filepath.Join(l.Root, "state", "link-budget.json") }

// SyncLock is the lock file that keeps two writers (the daemon, `sync
// --once`, `import --config`) off one data dir.
func (l Layout) SyncLock() string { return filepath.Join(l.Root, "sync.lock") }

// RegistryCredentials is the default registry write credentials file
// (one line user:password, 0600), generated when absent.
func (l Layout) RegistryCredentials() string { return filepath.Join(l.Root, "registry-credentials") }

// APIToken is the default credential file of the daemon's state-changing
// API routes, generated when absent.
func (l Layout) APIToken() string { return filepath.Join(l.Root, "api-token") }

// FleetState is what the fleet publisher last published (internal/fleet),
// so a restart does not re-publish an unchanged status.
func (l Layout) FleetState() string { return filepath.Join(l.Root, "state", "fleet.json") }
