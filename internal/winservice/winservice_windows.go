//go:build windows

package winservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Install registers the service name with the service manager: automatic
// start, restarted 5 s after a failure, running this executable as
// "service run --name NAME -- ARGS".
func Install(name string, args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the executable: %w", err)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connecting to the service manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(name); err == nil {
		s.Close()
		return fmt.Errorf("service %s already exists: certkeeper service uninstall --name %s first", name, name)
	}
	s, err := m.CreateService(name, exe, mgr.Config{
		DisplayName: "certkeeper (" + name + ")",
		Description: "TLS certificates that manage themselves",
		StartType:   mgr.StartAutomatic,
	}, append([]string{"service", "run", "--name", name, "--"}, args...)...)
	if err != nil {
		return fmt.Errorf("creating service %s: %w", name, err)
	}
	defer s.Close()
	if err := s.SetRecoveryActions([]mgr.RecoveryAction{{Type: mgr.ServiceRestart, Delay: 5 * time.Second}}, 24*60*60); err != nil {
		return fmt.Errorf("setting service %s to restart after a failure: %w", name, err)
	}
	return nil
}

// Uninstall stops (waiting up to 40 s) and deletes the service name.
func Uninstall(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connecting to the service manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	defer s.Close()
	if st, err := s.Control(svc.Stop); err == nil {
		for deadline := time.Now().Add(40 * time.Second); st.State != svc.Stopped && time.Now().Before(deadline); {
			time.Sleep(300 * time.Millisecond)
			if st, err = s.Query(); err != nil {
				break
			}
		}
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("deleting service %s: %w", name, err)
	}
	return nil
}

// Run runs run under the service manager as the service name, its output
// going to LogFile(%ProgramData%, name); run's context ends when the
// service is stopped or Windows shuts down, and its result is the
// service's exit code.
func Run(name string, run func(ctx context.Context, logs io.Writer) int) error {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return err
	}
	if !isService {
		return errors.New("service run is started by the Windows service manager; to try the command, run it directly")
	}
	file := LogFile(os.Getenv("ProgramData"), name)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	logs, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logs.Close()
	return svc.Run(name, &handler{run: func(ctx context.Context) int { return run(ctx, logs) }})
}

// handler runs the command while the service runs.
type handler struct {
	run func(ctx context.Context) int
}

// Execute reports the service running, and cancels the command's context
// on Stop or Shutdown, as SIGTERM does on unix.
func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: 40000}
				cancel()
				return false, uint32(<-done)
			}
		case code := <-done:
			return code != 0, uint32(code)
		}
	}
}
