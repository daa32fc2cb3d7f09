package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// Distribution logs through logrus' process-wide standard logger (its
// internal dcontext package takes its default from there), so the bridge is
// process-wide too: logrus writes nothing itself and a hook hands every entry
// to a slog logger. An entry made for a request carries the "instance.id"
// of the request's context, which each Registry sets to an id of its own
// (withInstance), so it reaches the logger of the Registry that served the
// request, also when one process runs two (the demo's cloud and edge).
// Entries made without a request (a few storage-layer messages, the upload
// purger) go to the most recently started Registry.
var (
	bridgeOnce   sync.Once
	bridgeTarget atomic.Pointer[slog.Logger]
	bridgeByID   sync.Map // instance id → *slog.Logger
)

// instanceKey is the context key Distribution reads the instance id under
// (dcontext's "instance.id"); its logger adds it to every entry.
const instanceKey = "instance.id"

func routeLogrus(id string, l *slog.Logger) {
	bridgeByID.Store(id, l)
	bridgeTarget.Store(l)
	bridgeOnce.Do(func() {
		std := logrus.StandardLogger()
		std.SetOutput(io.Discard)
		std.SetLevel(logrus.InfoLevel)
		std.AddHook(slogHook{})
	})
}

// unrouteLogrus forgets the logger of a closed Registry.
func unrouteLogrus(id string) { bridgeByID.Delete(id) }

// withInstance gives every request the Registry's instance id, so what
// Distribution logs for it reaches that Registry's logger.
func withInstance(id string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(instanceContext{r.Context(), id}))
	})
}

// instanceContext answers Distribution's string key, which
// context.WithValue is not meant for.
type instanceContext struct {
	context.Context
	id string
}

func (c instanceContext) Value(key any) any {
	if k, ok := key.(string); ok && k == instanceKey {
		return c.id
	}
	return c.Context.Value(key)
}

// bridgeLogger is the logger of the Registry an entry came from.
func bridgeLogger(e *logrus.Entry) *slog.Logger {
	if id, ok := e.Data[instanceKey].(string); ok {
		if l, ok := bridgeByID.Load(id); ok {
			return l.(*slog.Logger)
		}
	}
	return bridgeTarget.Load()
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	l := bridgeLogger(e)
	if l == nil {
		return nil
	}
	// Distribution logs every request at info ("response completed" and
	// friends); that is debug chatter for an edge daemon. Its warnings and
	// errors keep their level.
	lv := slog.LevelDebug
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		lv = slog.LevelError
	case logrus.WarnLevel:
		lv = slog.LevelWarn
	}
	lv = demote(e, lv)
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, lv) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("lib", "distribution"))
	for k, v := range e.Data {
		switch k {
		case "go.version", "instance.id", "service", "environment":
			continue // static noise
		}
		if err, ok := v.(error); ok {
			v = err.Error()
		} else if s, ok := v.(fmt.Stringer); ok {
			v = s.String()
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	l.LogAttrs(ctx, lv, e.Message, attrs...)
	return nil
}

// demote lowers what is normal for the edge: a 4xx answer (a HEAD for a
// missing manifest is how verify and containerd ask) is not an error, and the
// index validation setting is deliberate (see distributionConfig).
func demote(e *logrus.Entry, lv slog.Level) slog.Level {
	if lv <= slog.LevelDebug {
		return lv
	}
	if e.Message == "response completed with error" {
		if st, ok := e.Data["http.response.status"].(int); ok && st < 500 {
			return slog.LevelDebug
		}
	}
	if strings.HasPrefix(e.Message, "Image index completeness validation has been disabled") {
		return slog.LevelDebug
	}
	// An upload whose body ended early or failed its digest is the writer
	// giving up (sync's download from upstream was cut, or it refused bytes
	// that did not match): the writer reports and retries it; for the
	// registry it is not an error.
	if aborted(e.Message) || aborted(fmt.Sprint(e.Data["err.detail"])) {
		return slog.LevelDebug
	}
	return lv
}

func aborted(s string) bool {
	return strings.HasSuffix(s, "unexpected EOF") || strings.Contains(s, "digest mismatch") ||
		strings.HasSuffix(s, "context canceled")
}
