package archive_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/storage/archive"
)

// TestConflictExplain: up to ten keys are listed, then how many more,
// then how to go on.
func TestConflictExplain(t *testing.T) {
	var keys []string
	for i := range 12 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
	}
	msg := (&archive.ConflictError{Keys: keys}).Explain("/s", "--from /t").Error()
	for _, want := range []string{"12 keys in /s already hold values that differ from --from /t's", "\tk09\n", "\t(and 2 more)\n", "Run again with --overwrite to replace them with --from /t's values."} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "k10") {
		t.Errorf("message lists more than ten keys:\n%s", msg)
	}
	if msg := (&archive.ConflictError{Keys: []string{"a"}}).Explain("/s", "the archive").Error(); strings.Contains(msg, "more") {
		t.Errorf("one key: %s", msg)
	}
}

// TestByteSize: bytes, KiB and MiB.
func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 14540: "14.2 KiB", 3 << 20: "3.0 MiB"} {
		if got := archive.ByteSize(n); got != want {
			t.Errorf("ByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
