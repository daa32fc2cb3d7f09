// Package realtest is the one way a test says that a real component it
// needs (a binary such as containerd, chromium, docker-registry, git or
// redis-server; root for chroot; a kernel facility such as /proc or a
// tmpfs) is missing. On a developer's machine the test skips, loudly. Where
// EnvRequire is set (.ci/run and `make unit` set it), it fails instead: a
// CI run in which a real-component test silently did not run is a failed
// run, since `go test` without -v hides skips.
package realtest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// EnvRequire names the environment variable that turns every Missing into
// a test failure when it is "1".
const EnvRequire = "BALLAST_REQUIRE_REAL"

// Required reports whether real components are required (EnvRequire=1).
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Missing stops the test because a real component is not there: what
// names it, how says how to get it (e.g. "apt-get install containerd").
// It skips the test, or fails it when Required.
func Missing(tb testing.TB, what, how string) {
	tb.Helper()
	msg := fmt.Sprintf("real component missing: %s", what)
	if how != "" {
		msg += " (" + how + ")"
	}
	if Required() {
		tb.Fatalf("%s; %s=1 requires every real-component test to run", msg, EnvRequire)
	}
	tb.Skip("SKIPPED LOUDLY: " + msg + "; set " + EnvRequire + "=1 to make this a failure")
}

// LookPath returns the path of the named binary, or calls Missing.
func LookPath(tb testing.TB, name, how string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, name+" binary not found on PATH", how)
	}
	return p
}

// Root calls Missing unless the test runs as root (CI runs as root).
func Root(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "root ("+why+")", "run the tests as root, as .ci/run does")
	}
}
