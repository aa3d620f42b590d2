package alert

import (
	"context"
	"strings"

	"github.com/certkeeper/certkeeper/internal/hook"
)

// Command is an Alerter's Exec that runs command with the shell (sh -c,
// cmd /c on Windows) for each alert, with the alert in its environment:
// CERTKEEPER_ALERT_JSON (the JSON a webhook gets), CERTKEEPER_ALERT_REASON,
// CERTKEEPER_ALERT_MESSAGE and CERTKEEPER_NAMES (space-separated). A
// command that fails or exits non-zero is an error, which the Alerter
// logs. It is the certkeeper command's --alert-exec.
func Command(command string) func(ctx context.Context, a Alert, payload []byte) error {
	return func(ctx context.Context, a Alert, payload []byte) error {
		return hook.Run(ctx, command, "CERTKEEPER_ALERT_JSON="+string(payload),
			"CERTKEEPER_ALERT_REASON="+a.Reason, "CERTKEEPER_ALERT_MESSAGE="+a.Message,
			"CERTKEEPER_NAMES="+strings.Join(a.Names, " "))
	}
}
