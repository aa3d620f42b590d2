//go:build !unix

package upgrade

import (
	"context"
	"errors"
	"os"
)

// Signals are the signals that ask for an upgrade: none on this system.
var Signals []os.Signal

// Upgrade is not supported on this system: sockets cannot be handed to a
// new process here.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	return 0, errors.New("upgrading in place is not supported on this system")
}

// Notify does nothing: there is no systemd here.
func Notify(state string) error { return nil }
