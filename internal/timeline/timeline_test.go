package timeline

import (
	"context"
	"testing"
	"time"
)

func TestMarkWithoutTimeline(t *testing.T) {
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { Mark(ctx, "step") }); n != 0 {
		t.Errorf("Mark without a Timeline: %v allocs, want 0", n)
	}
}

func TestLogValueSumsRepeatedSteps(t *testing.T) {
	tl := New()
	ctx := With(context.Background(), tl)
	Mark(ctx, "a")
	time.Sleep(time.Millisecond)
	Mark(ctx, "b")
	Mark(ctx, "b")
	steps := tl.Steps()
	if len(steps) != 3 || steps[1].Took < time.Millisecond {
		t.Fatalf("Steps() = %v, want a, b (≥ 1ms), b", steps)
	}
	attrs := tl.LogValue().Group()
	if len(attrs) != 3 || attrs[0].Key != "a" || attrs[1].Key != "b" || attrs[2].Key != "total" {
		t.Fatalf("LogValue() = %v, want a, b, total", attrs)
	}
	if got, want := attrs[1].Value.Int64(), (steps[1].Took + steps[2].Took).Microseconds(); got < want-1 || got > want+1 {
		t.Errorf("b = %d µs, want the sum of both marks, %d µs", got, want)
	}
	if attrs[2].Value.Int64() < attrs[1].Value.Int64() {
		t.Errorf("total %d µs < step b %d µs", attrs[2].Value.Int64(), attrs[1].Value.Int64())
	}
}
