package certkeeper

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// contain runs f, one piece of work (what, on the subject attr names; the
// zero Attr for none), and
// turns a panic in it into an error, logged with the subject and the
// stack: a bug, or a stored value no check foresaw, then fails that piece
// of work — one handshake's issuance, one renewal, one housekeeping round
// — and not the process serving every other name.
//
// This is the one place certkeeper recovers. It has to be inside the
// function given to singleflight: x/sync/singleflight re-raises a panic of
// that function in a goroutine of its own for DoChan callers, where no
// caller can recover it, so any panic there would end the process.
func contain[T any](m *Manager, what string, attr slog.Attr, f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.logger().Error("certkeeper bug: a panic stopped one piece of work; the rest goes on",
				slog.String("work", what), attr, slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			if attr.Key != "" {
				what += " " + attr.Value.String()
			}
			var zero T
			v, err = zero, fmt.Errorf("%s: internal error (a panic, logged with its stack): %v", what, r)
		}
	}()
	return f()
}

// guard is contain for work that returns nothing: the panic is logged and
// the work abandoned.
func (m *Manager) guard(what string, attr slog.Attr, f func()) {
	_, _ = contain(m, what, attr, func() (struct{}, error) {
		f()
		return struct{}{}, nil
	})
}
