package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ballast-dev/ballast/internal/config"
	"github.com/ballast-dev/ballast/internal/exitcode"
	"github.com/ballast-dev/ballast/internal/k3sconfig"
	"github.com/ballast-dev/ballast/internal/units"
)

type syncNowOptions struct {
	edgeURL, configPath, tokenFile string
	ignoreBudget                   bool
	output                         string
}

// syncNowAnswer is the part of the daemon's answer the CLI prints.
type syncNowAnswer struct {
	Accepted bool `json:"accepted"`
	Link     struct {
		Open       bool       `json:"open"`
		NextWindow *time.Time `json:"nextWindow,omitempty"`
		Stopped    string     `json:"stopped,omitempty"`
		Budget     []struct {
			Period string `json:"period"`
			Left   int64  `json:"leftBytes"`
			Limit  int64  `json:"limitBytes"`
		} `json:"budget,omitempty"`
	} `json:"link"`
	Error string `json:"error,omitempty"`
}

// syncNow posts a "sync now" to the running daemon.
func syncNow(ctx context.Context, e *env, o syncNowOptions) error {
	if o.output != "text" && o.output != "json" {
		return exitcode.Invalid(fmt.Errorf("output format %q: want text or json", o.output))
	}
	base, cfg, err := edgeBase(o.edgeURL, o.configPath, "--now")
	if err != nil {
		return err
	}
	tf := o.tokenFile
	if tf == "" && cfg != nil && !envTokenSet() {
		tf = cfg.APITokenFile()
	}
	tok, err := apiToken(tf)
	if err != nil {
		return exitcode.Invalid(err)
	}
	body, _ := json.Marshal(map[string]bool{"ignoreBudget": o.ignoreBudget})
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/api/v1/sync/now", bytes.NewReader(body))
	if err != nil {
		return exitcode.Invalid(err)
	}
	req.Header.Set("Content-Type", "application/json")
	tok.SetHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return exitcode.Fail(fmt.Errorf("edge daemon at %s: %w", base, err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusAccepted {
		msg := strings.TrimSpace(string(raw))
		var a syncNowAnswer
		if json.Unmarshal(raw, &a) == nil && a.Error != "" {
			msg = a.Error
		}
		return exitcode.Fail(fmt.Errorf("edge daemon at %s refused sync now: %s: %s", base, resp.Status, msg))
	}
	if o.output == "json" {
		_, err := e.stdout.Write(raw)
		return err
	}
	var a syncNowAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return exitcode.Fail(fmt.Errorf("edge daemon answer: %w", err))
	}
	fmt.Fprintln(e.stdout, "sync now: accepted; the daemon starts a pass at once")
	for _, b := range a.Link.Budget {
		fmt.Fprintf(e.stdout, "budget per %s: %s left of %s\n", b.Period, units.Bytes(b.Left), units.Bytes(b.Limit))
		if b.Left == 0 && !o.ignoreBudget {
			fmt.Fprintln(e.stdout, "the budget is spent: nothing moves until it rolls over (--ignore-budget to spend past it)")
		}
	}
	return nil
}

// edgeBase returns the running daemon's HTTP base URL: edgeURL when set,
// else the one the edge config at configPath listens on
// (k3sconfig.NodeEndpoint: a wildcard address is dialled on 127.0.0.1),
// and that config when configPath is set. what names the command's mode
// in the error when neither is given. Errors are exit 2
// (exitcode.Invalid).
func edgeBase(edgeURL, configPath, what string) (string, *config.Config, error) {
	var cfg *config.Config
	if configPath != "" {
		var err error
		if cfg, err = config.Load(configPath); err != nil {
			return "", nil, exitcode.Invalid(err)
		}
	}
	base := edgeURL
	if base == "" {
		if cfg == nil {
			return "", nil, exitcode.Invalid(fmt.Errorf("%s needs --edge URL or --config FILE", what))
		}
		// The rule doctor and install use: a wildcard is dialled on
		// 127.0.0.1.
		ep, err := k3sconfig.NodeEndpoint(cfg.Listen.HTTP)
		if err != nil {
			return "", nil, exitcode.Invalid(fmt.Errorf("listen.http: %w", err))
		}
		base = "http://" + ep
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, exitcode.Invalid(fmt.Errorf("--edge %q: want the daemon's http(s) base URL, e.g. http://127.0.0.1:8080", base))
	}
	return strings.TrimRight(base, "/"), cfg, nil
}

func envTokenSet() bool {
	t, err := apiToken("")
	return err == nil && !t.IsZero()
}
