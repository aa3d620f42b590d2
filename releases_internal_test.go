package certkeeper

import (
	"context"
	"testing"
	"time"
)

// TestIssueReleasesWait: an obtain of a name whose issue lock this process
// is still releasing waits for the release (a lock it would otherwise find
// held, and back off from for 5–10 ms), and no longer than that.
func TestIssueReleasesWait(t *testing.T) {
	var r issueReleases
	if err := r.wait(t.Context(), "issue/a.test"); err != nil {
		t.Fatalf("wait with nothing being released: %v", err)
	}
	released := false
	release := r.start("issue/a.test", func() { released = true })

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := r.wait(ctx, "issue/a.test"); err == nil {
		t.Fatal("wait returned while the release had not run")
	}
	if err := r.wait(t.Context(), "issue/b.test"); err != nil {
		t.Fatalf("wait for another name: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- r.wait(t.Context(), "issue/a.test") }()
	release()
	select {
	case err := <-done:
		if err != nil || !released {
			t.Fatalf("wait after the release = %v (released %v), want nil after unlock ran", err, released)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after the release")
	}
	if _, ok := r.m.Load("issue/a.test"); ok {
		t.Error("a finished release is still tracked")
	}
}
