package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestFunc(t *testing.T) {
	deny := errors.New("no")
	var p Policy = Func(func(_ context.Context, name string) error {
		if name == "a.test" {
			return nil
		}
		return deny
	})
	tests := []struct {
		in   string
		want error
	}{
		{"a.test", nil},
		{"b.test", deny},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := p.Decide(t.Context(), tt.in); got != tt.want {
				t.Errorf("Decide(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// recorder is a Policy that returns err and counts its calls.
type recorder struct {
	err   error
	calls int
}

func (r *recorder) Decide(context.Context, string) error {
	r.calls++
	return r.err
}

func TestAll(t *testing.T) {
	deny1 := fmt.Errorf("%w: first", ErrDenied)
	deny2 := fmt.Errorf("%w: second", ErrDenied)
	tests := []struct {
		name  string
		errs  []error // one policy per entry
		want  error   // nil, or the error All must return
		calls []int   // calls each policy must have had
	}{
		{name: "all allow", errs: []error{nil, nil, nil}, calls: []int{1, 1, 1}},
		{name: "first refuses, rest not asked", errs: []error{deny1, nil, deny2}, want: deny1, calls: []int{1, 0, 0}},
		{name: "last refuses", errs: []error{nil, nil, deny2}, want: deny2, calls: []int{1, 1, 1}},
		{name: "first refusal wins", errs: []error{nil, deny1, deny2}, want: deny1, calls: []int{1, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := make([]Policy, len(tt.errs))
			rs := make([]*recorder, len(tt.errs))
			for i, err := range tt.errs {
				rs[i] = &recorder{err: err}
				ps[i] = rs[i]
			}
			if got := All(ps...).Decide(t.Context(), "a.test"); got != tt.want {
				t.Errorf("Decide(%q) = %v, want %v", "a.test", got, tt.want)
			}
			for i, r := range rs {
				if r.calls != tt.calls[i] {
					t.Errorf("policy %d asked %d times, want %d", i, r.calls, tt.calls[i])
				}
			}
		})
	}
}

func TestAny(t *testing.T) {
	deny1 := fmt.Errorf("%w: first", ErrDenied)
	down := errors.New("endpoint down")
	tests := []struct {
		name  string
		errs  []error
		allow bool
		calls []int
	}{
		{name: "first allows, rest not asked", errs: []error{nil, deny1}, allow: true, calls: []int{1, 0}},
		{name: "second allows", errs: []error{deny1, nil}, allow: true, calls: []int{1, 1}},
		{name: "none allows", errs: []error{deny1, down}, calls: []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := make([]Policy, len(tt.errs))
			rs := make([]*recorder, len(tt.errs))
			for i, err := range tt.errs {
				rs[i] = &recorder{err: err}
				ps[i] = rs[i]
			}
			err := Any(ps...).Decide(t.Context(), "a.test")
			if tt.allow != (err == nil) {
				t.Fatalf("Decide(%q) = %v, want allow %v", "a.test", err, tt.allow)
			}
			if err != nil {
				for _, want := range tt.errs {
					if !errors.Is(err, want) {
						t.Errorf("Decide(%q) = %v, want it to wrap %v", "a.test", err, want)
					}
				}
			}
			for i, r := range rs {
				if r.calls != tt.calls[i] {
					t.Errorf("policy %d asked %d times, want %d", i, r.calls, tt.calls[i])
				}
			}
		})
	}
}

func TestCombinatorEdges(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   func(...Policy) Policy
	}{{"All", All}, {"Any", Any}} {
		t.Run(c.name+" empty", func(t *testing.T) {
			err := c.fn().Decide(t.Context(), "a.test")
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "a.test") {
				t.Errorf("%s().Decide(%q) = %v, want ErrDenied naming the name", c.name, "a.test", err)
			}
		})
		t.Run(c.name+" done context", func(t *testing.T) {
			r := &recorder{}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := c.fn(r).Decide(ctx, "a.test")
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDenied) || r.calls != 0 {
				t.Errorf("%s(p).Decide(canceled, %q) = %v after %d calls, want context.Canceled and no call",
					c.name, "a.test", err, r.calls)
			}
		})
		t.Run(c.name+" nil panics", func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s(p, nil) did not panic", c.name)
				}
			}()
			c.fn(Allowlist("a.test"), nil)
		})
		t.Run(c.name+" copies its arguments", func(t *testing.T) {
			ps := []Policy{Allowlist("a.test")}
			p := c.fn(ps...)
			ps[0] = Allowlist()
			if err := p.Decide(t.Context(), "a.test"); err != nil {
				t.Errorf("Decide(%q) after changing the caller's slice = %v, want nil", "a.test", err)
			}
		})
	}
}

func TestAllAllocs(t *testing.T) {
	p := All(Allowlist("a.test"), Func(func(context.Context, string) error { return nil }))
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Decide(ctx, "a.test"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("All(...).Decide(%q) allocates %v times, want 0", "a.test", allocs)
	}
}
