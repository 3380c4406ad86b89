package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/installers"
)

// windowsService manages the client as the "momonga" Windows service, as
// the MSI installs it: started at boot, run as LocalService, its data in
// %ProgramData%\momonga.
type windowsService struct{ dataDir string }

func newServiceManager() (serviceManager, error) {
	dir := filepath.Join(os.Getenv("ProgramData"), "momonga")
	return &windowsService{dataDir: dir}, nil
}

func (w *windowsService) DefaultDataDir() string { return w.dataDir }

func connect() (*mgr.Mgr, error) {
	m, err := mgr.Connect()
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return nil, errors.New("managing services takes an administrator: run this in a prompt opened with \"Run as administrator\"")
	}
	return m, err
}

func (w *windowsService) Install(spec installers.ServiceSpec) (string, error) {
	m, err := connect()
	if err != nil {
		return "", err
	}
	defer m.Disconnect()
	if s, err := m.OpenService(serviceName); err == nil {
		s.Close()
		return "", fmt.Errorf("the %s service exists already (installed by the MSI, or earlier): `momonga service status` shows it", serviceName)
	}
	if err := os.MkdirAll(spec.DataDir, 0o700); err != nil {
		return "", err
	}
	s, err := m.CreateService(serviceName, spec.Exec, mgr.Config{
		DisplayName:      "momonga volunteer computing client",
		Description:      "Computes for the science projects it is attached to while this machine is idle.",
		StartType:        mgr.StartAutomatic,
		ServiceStartName: `NT AUTHORITY\LocalService`,
	}, "run", "--data", spec.DataDir)
	if err != nil {
		return "", fmt.Errorf("create the service: %w", err)
	}
	defer s.Close()
	if err := s.Start(); err != nil {
		return "", fmt.Errorf("start the service: %w", err)
	}
	return fmt.Sprintf("installed and started the %s service (it starts at boot)", serviceName), nil
}

// open opens the installed service; close releases it and the manager.
func open() (s *mgr.Service, close func(), err error) {
	m, err := connect()
	if err != nil {
		return nil, nil, err
	}
	if s, err = m.OpenService(serviceName); err != nil {
		m.Disconnect()
		return nil, nil, errNotInstalled
	}
	return s, func() { s.Close(); m.Disconnect() }, nil
}

var errNotInstalled = errors.New("the momonga service is not installed: the MSI or `momonga service install` installs it")

func (w *windowsService) Uninstall() (string, error) {
	s, closeService, err := open()
	if err != nil {
		return "", err
	}
	defer closeService()
	if st, err := s.Control(svc.Stop); err == nil {
		deadline := time.Now().Add(time.Minute)
		for st.State != svc.Stopped && time.Now().Before(deadline) {
			time.Sleep(300 * time.Millisecond)
			if st, err = s.Query(); err != nil {
				break
			}
		}
	}
	if err := s.Delete(); err != nil {
		return "", fmt.Errorf("remove the service: %w", err)
	}
	return fmt.Sprintf("stopped and removed the %s service; its data stays in %s", serviceName, w.dataDir), nil
}

func (w *windowsService) Status() (string, error) {
	s, closeService, err := open()
	if errors.Is(err, errNotInstalled) {
		return "not installed: the MSI or `momonga service install` installs it", nil
	}
	if err != nil {
		return "", err
	}
	defer closeService()
	st, err := s.Query()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("installed: %s", stateName(st.State)), nil
}

func stateName(s svc.State) string {
	switch s {
	case svc.Stopped:
		return "stopped"
	case svc.StartPending:
		return "starting"
	case svc.StopPending:
		return "stopping"
	case svc.Running:
		return "running"
	case svc.Paused:
		return "paused"
	}
	return fmt.Sprintf("state %d", s)
}

// serviceContext is ctx, cancelled when the client is asked to stop: by
// Ctrl-C in a console, or by the service manager when Windows runs it as a
// service, which is then told when the client has stopped.
func serviceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if is, err := svc.IsWindowsService(); err != nil || !is {
		return cliutil.SignalContext(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &serviceHandler{stop: cancel, done: make(chan struct{})}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = svc.Run(serviceName, h)
		cancel()
	}()
	return ctx, func() {
		cancel()
		close(h.done)
		<-finished
	}
}

// serviceHandler answers the service manager: running until told to stop,
// then stopping until the client has.
type serviceHandler struct {
	stop func()
	done chan struct{} // closed when the client returned
}

func (h *serviceHandler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case <-h.done:
			status <- svc.Status{State: svc.StopPending}
			return false, 0
		case r := <-requests:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: 30000}
				h.stop()
				<-h.done
				return false, 0
			}
		}
	}
}
