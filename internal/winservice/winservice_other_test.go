//go:build !windows

package winservice

import (
	"context"
	"errors"
	"io"
	"testing"
)

// TestNotWindows: elsewhere every function refuses, naming the unix
// equivalents, and never runs the command.
func TestNotWindows(t *testing.T) {
	ran := false
	errs := []error{
		Install("certkeeper", []string{"proxy"}),
		Uninstall("certkeeper"),
		Run("certkeeper", func(context.Context, io.Writer) int { ran = true; return 0 }),
	}
	for i, err := range errs {
		if !errors.Is(err, ErrNotWindows) {
			t.Errorf("call %d = %v, want ErrNotWindows", i, err)
		}
	}
	if ran {
		t.Error("Run ran the command on a system without a service manager")
	}
}
