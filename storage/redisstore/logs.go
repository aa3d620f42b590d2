package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Logs is a go-redis logger (for redis.SetLogger) that writes go-redis's
// own messages (a dial that failed, a pool problem) at debug to the logger
// that logger returns at each message. go-redis has one logger per
// process, plain text on stderr by default: it ignores the program's log
// level, breaks JSON logs, and during a Redis outage repeats what a Store's
// errors already say with their context. A program sets it once, in main:
//
//	redis.SetLogger(redisstore.Logs(func() *slog.Logger { return logger }))
type Logs func() *slog.Logger

// Printf implements go-redis's internal.Logging.
func (l Logs) Printf(ctx context.Context, format string, v ...any) {
	if logger := l(); logger != nil {
		logger.DebugContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "), slog.String("from", "go-redis"))
	}
}
