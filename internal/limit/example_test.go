package limit_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/certkeeper/certkeeper/internal/limit"
)

func ExampleFailureBackoff() {
	var b limit.FailureBackoff // Let's Encrypt's limit: 5 failures per name per hour
	start := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	b.Record("a.test", start) // the CA could not validate a.test
	ok, retryAt := b.Allowed("a.test", start.Add(30*time.Second))
	fmt.Println(ok, retryAt.Format(time.TimeOnly))

	// The Manager keeps the state in storage across restarts.
	state, _ := json.Marshal(b.State())
	fmt.Println(string(state))
	// Output:
	// false 15:01:00
	// {"failures":{"a.test":["2026-01-02T15:00:00Z"]}}
}
