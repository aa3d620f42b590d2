package cli

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
)

// jsonLines is stderr under --log-format json: the human messages a
// command prints ("certkeeper: proxy listening on …") become JSON records
// too, at every --log-level, so that every line a log shipper reads
// parses.
type jsonLines struct {
	mu     sync.Mutex // guards buf
	buf    []byte     // a line not yet complete
	logger *slog.Logger
}

func newJSONLines(w io.Writer) *jsonLines {
	return &jsonLines{logger: slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// Write logs each complete line as one record.
func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			break
		}
		if line := string(bytes.TrimSpace(j.buf[:i])); line != "" {
			j.logger.Info(line)
		}
		j.buf = j.buf[i+1:]
	}
	return len(p), nil
}
