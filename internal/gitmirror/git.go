package gitmirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// gitEnv is the environment every git child runs with. It is built from
// scratch rather than inherited so that a GIT_DIR, GIT_CONFIG_* or
// credential helper in the daemon's environment can never leak into, or
// redirect, a mirror operation.
func gitEnv(extra ...string) []string {
	env := []string{
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		// Redirects and submodules cannot switch to ext::, file:: or other
		// transports behind our back.
		"GIT_ALLOW_PROTOCOL=http:https:ssh",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"LC_ALL=C",
		"LANG=C",
	}
	// The few variables git legitimately needs from the host: where to find
	// programs, a home for ssh known_hosts, a temp dir, and proxies.
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "http_proxy", "https_proxy", "no_proxy",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "GIT_SSH_COMMAND", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// configEnv turns key/value pairs into GIT_CONFIG_COUNT/KEY/VALUE variables.
// Values given this way never appear on a command line (where ps would show
// them) or in a config file.
func configEnv(kv ...string) []string {
	if len(kv) == 0 {
		return nil
	}
	n := len(kv) / 2
	env := []string{"GIT_CONFIG_COUNT=" + strconv.Itoa(n)}
	for i := 0; i < n; i++ {
		env = append(env,
			fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[2*i]),
			fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[2*i+1]))
	}
	return env
}

// hardening is passed on every git command line: hooks can never run, and
// nothing in a repository's config can start a helper program.
var hardening = []string{
	"-c", "core.hooksPath=/dev/null",
	"-c", "core.fsmonitor=false",
}

// gitCmd describes one git invocation.
type gitCmd struct {
	dir    string   // working directory ("" = inherit)
	args   []string // after "git" and the hardening options
	env    []string // extra environment
	stdin  io.Reader
	stdout io.Writer // nil = captured and returned
	// started, when set, is called with the process id right after start
	// (tests use it to kill a fetch mid-way).
	started func(pid int)
}

// maxStderr bounds how much of git's stderr is kept for error messages.
const maxStderr = 4 << 10

// run executes git and returns its stdout (when not streamed). The child
// runs in its own process group so that cancelling ctx kills git and every
// helper it started (git-remote-https, index-pack), leaving no orphans that
// could keep writing into a repository.
func (g gitCmd) run(ctx context.Context) ([]byte, error) {
	args := append(append([]string{}, hardening...), g.args...)
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.dir
	cmd.Env = gitEnv(g.env...)
	cmd.Stdin = g.stdin
	var out bytes.Buffer
	if g.stdout != nil {
		cmd.Stdout = g.stdout
	} else {
		cmd.Stdout = &out
	}
	stderr := &limitedBuffer{max: maxStderr}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git %s: %w", verb(g.args), err)
	}
	if g.started != nil {
		g.started(cmd.Process.Pid)
	}
	err := cmd.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return out.Bytes(), fmt.Errorf("git %s: %w", verb(g.args), ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return out.Bytes(), fmt.Errorf("git %s: %w", verb(g.args), err)
		}
		return out.Bytes(), &gitError{verb: verb(g.args), msg: errorText(msg), err: err}
	}
	return out.Bytes(), nil
}

// gitError is a failed git command with the tail of its stderr.
type gitError struct {
	verb string
	msg  string
	err  error
}

func (e *gitError) Error() string { return "git " + e.verb + ": " + e.msg }
func (e *gitError) Unwrap() error { return e.err }

// exitCode returns the exit status of a failed git command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// verb names the git subcommand for messages, skipping "-c k=v" and "-C dir".
func verb(args []string) string {
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-c", "-C":
			i++
			continue
		}
		if !strings.HasPrefix(args[i], "-") {
			return args[i]
		}
	}
	return "?"
}

// maxErrText bounds the stderr text kept in an error (and so in the
// repository status): a few lines of git's messages fit whole.
const maxErrText = 1500

// errorText turns git's stderr into one line of text: its messages joined
// by "; " (wrapped lines of one message by a space), whole when it fits in maxErrText bytes, else cut on a word (or at
// least a rune) boundary and marked with an ellipsis. Never cut mid-rune
// or mid-word, so a stored error reads as what git said.
func errorText(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if b.Len() > 0 {
			// A new message starts with its kind; anything else
			// continues the sentence git wrapped.
			if startsMessage(l) {
				b.WriteString("; ")
			} else {
				b.WriteString(" ")
			}
		}
		b.WriteString(l)
	}
	return cutText(b.String(), maxErrText)
}

func startsMessage(l string) bool {
	for _, p := range []string{"error:", "fatal:", "warning:", "hint:", "remote:", "!", "…"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// cutText returns s when it has at most max bytes, else its longest prefix
// that ends before a space (or, with no space in reach, on a rune
// boundary), of at most max bytes with the ellipsis, followed by "…".
// Invalid UTF-8 is replaced first, so the result is always valid.
func cutText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	const ell = "…"
	limit := max - len(ell)
	if limit < 0 {
		limit = 0
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if s[cut] != ' ' { // not already at the end of a word
		if sp := strings.LastIndexByte(s[:cut], ' '); sp > limit/2 {
			cut = sp
		}
	}
	return strings.TrimRight(s[:cut], " ;,") + ell
}

// limitedBuffer keeps the first max and the last max bytes written to it,
// with a line "…" between them when it dropped some: git's first error
// line and its last both stay readable.
type limitedBuffer struct {
	head    []byte
	tail    []byte
	dropped bool
	max     int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := l.max - len(l.head); room > 0 {
		k := min(room, len(p))
		l.head = append(l.head, p[:k]...)
		p = p[k:]
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > l.max {
		l.tail = l.tail[len(l.tail)-l.max:]
		l.dropped = true
	}
	return n, nil
}

func (l *limitedBuffer) String() string {
	if !l.dropped {
		return string(l.head) + string(l.tail)
	}
	tail := l.tail
	// Start the tail at a line boundary: a partial first line says nothing.
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	head := l.head
	if i := bytes.LastIndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	return string(head) + "\n…\n" + string(tail)
}
