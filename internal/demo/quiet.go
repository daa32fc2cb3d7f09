package demo

import (
	"context"
	"log/slog"
	"strings"
)

// QuietLogs returns a logger that drops what the demo's link cuts make
// Distribution log at error level on every cut (the edge registry sees an
// upload body end early when sync's download is cut; sync resumes it), so
// the warnings that remain on stderr say something.
func QuietLogs(l *slog.Logger) *slog.Logger {
	return slog.New(quietHandler{l.Handler()})
}

type quietHandler struct{ next slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return h.next.Enabled(ctx, lv)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if cutUpload(r) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.next.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.next.WithGroup(name)}
}

// cutUpload recognises Distribution's two records for an upload whose body
// ended early.
func cutUpload(r slog.Record) bool {
	if !strings.Contains(r.Message, "reading request payload") && r.Message != "response completed with error" {
		return false
	}
	lib, eof := false, strings.Contains(r.Message, "unexpected EOF")
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "lib":
			lib = a.Value.String() == "distribution"
		case "err.detail":
			eof = eof || strings.Contains(a.Value.String(), "unexpected EOF")
		}
		return true
	})
	return lib && eof
}
