// Package every lets a thing happen at most once per interval, from any
// number of goroutines, without a lock: a warning logged once a minute
// however many connections fail or clients send a wrong token. Its zero
// value lets the first caller through.
package every

import (
	"sync/atomic"
	"time"
)

// Gate lets one caller through per interval.
type Gate struct {
	last atomic.Int64 // unix ns of the last caller let through
}

// Allow reports whether the caller may go ahead: whether d has passed
// since the last caller Allow let through (and then it is this one).
func (g *Gate) Allow(d time.Duration) bool {
	now, last := time.Now().UnixNano(), g.last.Load()
	return now-last >= int64(d) && g.last.CompareAndSwap(last, now)
}
