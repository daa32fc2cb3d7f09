package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-dev/ballast/internal/apiauth"
	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/install"
	"github.com/ballast-dev/ballast/internal/version"
)

func newInstallCmd(e *env) *cobra.Command {
	var (
		cfgPath, outDir string
		o               install.Options
		apps            []string
		airgapDir       string
		tokenFile       string
	)
	c := &cobra.Command{
		Use:   "install --config FILE [--output-dir DIR]",
		Short: "Render the Kubernetes, Argo CD and k3s files for an edge config",
		Long: `install prints (or writes to --output-dir) everything an operator applies:
the edge daemon (Namespace, ServiceAccount, ConfigMap, Deployment, Services),
Argo CD repository Secrets pointing at the mirror, the PreSync gate Job and
its RBAC, an example Application with unlimited retries, and the node's k3s
registries.yaml, config.yaml fragment and containerd hosts.toml files.

Every file the config names (registry and repository credentials, trust
public keys, the fleet signing key and its password) is read, relative to
the config file, into the Secret ballast-edge-files, which the daemon
mounts read-only at /etc/ballast-files; the in-cluster config names the
mounted copies.

The daemon's API token (state-changing API routes need it) goes into a
Secret for the daemon and one per app namespace that the hook Job mounts.
It is new on every run unless --api-token-file names an existing one (e.g.
the daemon's <dataDir>/api-token); files holding it are written mode 0600:
apply them, don't commit them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return exitcode.Invalid(fmt.Errorf("--config is required"))
			}
			raw, err := os.ReadFile(cfgPath)
			if err != nil {
				return exitcode.Invalid(err)
			}
			cfg, err := config.Parse(raw)
			if err != nil {
				return exitcode.Invalid(fmt.Errorf("config %s: %w", cfgPath, err))
			}
			for _, a := range apps {
				app, err := parseAppFlag(a)
				if err != nil {
					return exitcode.Invalid(err)
				}
				o.Apps = append(o.Apps, app)
			}
			if tokenFile != "" {
				if o.APIToken, err = apiauth.ReadFile(tokenFile); err != nil {
					return exitcode.Invalid(err)
				}
			}
			o.ConfigDir = filepath.Dir(cfgPath)
			files, err := install.Render(cfg, raw, o)
			if err != nil {
				return exitcode.Invalid(err)
			}
			if airgapDir != "" {
				if err := writeAirgap(e, airgapDir, o.Image); err != nil {
					return err
				}
			}
			if outDir == "" {
				for _, f := range files {
					fmt.Fprintf(e.stdout, "# ballast install: %s\n", f.Path)
					if _, err := e.stdout.Write(f.Content); err != nil {
						return err
					}
				}
				return nil
			}
			for _, f := range files {
				p := filepath.Join(outDir, filepath.FromSlash(f.Path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				perm := os.FileMode(0o644)
				if f.Sensitive {
					perm = 0o600
				}
				if err := writeFileMode(p, f.Content, perm); err != nil {
					return err
				}
				e.log.Info("wrote", "file", p)
			}
			return nil
		},
	}
	f := c.Flags()
	pathVar(f, &cfgPath, "config", "", "edge config file")
	pathVar(f, &outDir, "output-dir", "", "write files under this directory instead of printing them")
	f.StringVar(&o.Namespace, "namespace", "ballast", "namespace of the edge daemon")
	f.StringVar(&o.ArgoCDNamespace, "argocd-namespace", "argocd", "namespace of Argo CD")
	f.StringVar(&o.Image, "image", "ghcr.io/ballast-dev/ballast:"+imageTag(), "ballast's own image")
	f.StringVar(&o.Storage, "storage", "hostPath", "data volume: hostPath (/var/lib/ballast on the node) or pvc")
	f.StringVar(&o.StorageSize, "storage-size", "20Gi", "size of the PersistentVolumeClaim with --storage pvc")
	f.StringVar(&o.NodeRegistry, "node-registry", "", "host:port at which containerd on the node reaches the edge registry (default 127.0.0.1:<registry port>)")
	pathVar(f, &airgapDir, "airgap-images", "", "also write ballast's own image as a tarball into this directory, for k3s's agent/images/ auto-import")
	pathVar(f, &tokenFile, "api-token-file", "", "use the API token in this file instead of generating a new one")
	f.StringSliceVar(&o.GitHosts, "git-host", nil, "another host whose scp-like git URLs (git@host:org/repo) Argo CD's repo-server fetches from the mirror, for submodules or remote bases there (repeatable)")
	f.StringArrayVar(&apps, "app", nil, "an Application the gate protects: name=N,repo=URL[,namespace=NS][,path=P] (repeatable; default one per repository)")
	return c
}

// writeFileMode writes data to p with exactly mode perm, also when p
// exists with a wider one.
func writeFileMode(p string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(p, data, perm); err != nil {
		return err
	}
	return os.Chmod(p, perm)
}

// imageTag is the tag of ballast's own image for this build.
func imageTag() string {
	if v := version.Get().Version; v != "dev" && v != "" {
		return v
	}
	return "latest"
}

func parseAppFlag(s string) (install.App, error) {
	a := install.App{Namespace: "default", Path: "."}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return a, fmt.Errorf("--app %q: want name=N,repo=URL[,namespace=NS][,path=P]", s)
		}
		switch k {
		case "name":
			a.Name = v
		case "repo":
			a.RepoURL = v
		case "namespace":
			a.Namespace = v
		case "path":
			a.Path = v
		default:
			return a, fmt.Errorf("--app %q: unknown key %q", s, k)
		}
	}
	if a.Name == "" || a.RepoURL == "" {
		return a, fmt.Errorf("--app %q: name and repo are required", s)
	}
	return a, nil
}

// writeAirgap writes this very binary, with the host's git CLI, as an image
// tarball that k3s imports at start.
func writeAirgap(e *env, dir, ref string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tag := ref[strings.LastIndex(ref, ":")+1:]
	out := filepath.Join(dir, "ballast-"+tag+".tar")
	if err := install.WriteAirgapImage(install.ImageSpec{Ref: ref, Binary: self}, out); err != nil {
		return exitcode.Fail(fmt.Errorf("airgap image: %w", err))
	}
	e.log.Info("wrote airgap image", "file", out, "image", ref,
		"hint", "copy it to /var/lib/rancher/k3s/agent/images/ on every node")
	return nil
}
