package cli

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/ballast-dev/ballast/internal/render/charts"
)

// chartRepoAuthEnv names the default of --chart-repo-auth.
const chartRepoAuthEnv = "BALLAST_CHART_REPO_AUTH"

// chartRepoAuthVar defines --chart-repo-auth FILE (default $BALLAST_CHART_REPO_AUTH).
func chartRepoAuthVar(f *pflag.FlagSet, p *string) {
	pathVar(f, p, "chart-repo-auth", os.Getenv(chartRepoAuthEnv),
		"file of Helm repository logins, one \"URL USERNAME:PASSWORD\" a line (default $"+chartRepoAuthEnv+"); OCI registries use the docker config")
}

// loadChartRepoAuth reads the --chart-repo-auth file ("" for none).
func loadChartRepoAuth(file string) ([]charts.RepoCredential, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--chart-repo-auth: %w", err)
	}
	creds, err := charts.ParseRepoAuth(data)
	if err != nil {
		return nil, fmt.Errorf("--chart-repo-auth %s: %w", file, err)
	}
	return creds, nil
}
