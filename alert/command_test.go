package alert_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/alert"
)

// TestCommand: the command gets the alert in its environment, and its
// failure is an error.
func TestCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test command is POSIX sh")
	}
	out := filepath.Join(t.TempDir(), "out")
	exec := alert.Command(`printf '%s|%s|%s|%s' "$CERTKEEPER_ALERT_REASON" "$CERTKEEPER_ALERT_MESSAGE" "$CERTKEEPER_NAMES" "$CERTKEEPER_ALERT_JSON" > ` + out)
	a := alert.Alert{Reason: "expiring", Message: "a.test expires soon", Names: []string{"a.test", "b.test"}}
	if err := exec(t.Context(), a, []byte(`{"reason":"expiring"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if want := `expiring|a.test expires soon|a.test b.test|{"reason":"expiring"}`; err != nil || string(got) != want {
		t.Errorf("the command saw %q, %v; want %q", got, err, want)
	}
	if err := alert.Command("echo broken; exit 3")(t.Context(), a, nil); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("a failing command = %v, want an error with its output", err)
	}
}
