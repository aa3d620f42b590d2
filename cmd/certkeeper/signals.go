package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/certkeeper/certkeeper/internal/upgrade"
)

// controlSignals returns channels for SIGHUP (reload) and the upgrade
// signal (SIGUSR2 where there is one), and a func that stops them.
func controlSignals() (hup, usr2 chan os.Signal, stop func()) {
	hup, usr2 = make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if len(upgrade.Signals) > 0 {
		signal.Notify(usr2, upgrade.Signals...)
	}
	return hup, usr2, func() { signal.Stop(hup); signal.Stop(usr2) }
}

// handOver starts the binary now at this one's path with the listening
// sockets (SIGUSR2). It reports whether the new process took over, after
// which this one stops accepting and drains; if not, the failure is
// logged and this process keeps serving.
func handOver(ctx context.Context, env *Env, up *upgrade.Upgrader) bool {
	pid, err := up.Upgrade(ctx)
	if err != nil {
		env.Logger.Error("upgrade failed; the running process keeps serving", slog.Any("err", err))
		fmt.Fprintf(env.Stderr, "certkeeper: upgrade failed; still serving: %v\n", err)
		return false
	}
	fmt.Fprintf(env.Stderr, "certkeeper: upgraded: process %d serves now\n", pid)
	up.StopAccepting()
	return true
}
