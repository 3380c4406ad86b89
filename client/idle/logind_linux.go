package idle

import (
	"errors"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// logindInput asks systemd-logind, over the system bus, for the idle hint
// of the whole machine: its manager's IdleHint and IdleSinceHint, which say
// "idle" only while every session is. Desktops set their session's hint
// after their own idle delay, on Wayland as on X11, so this sees the person
// where no display can be read. It needs no session of its own: the system
// service asks it as a person's client does. It is slow to follow the
// person, so it is asked at most every `every`, and only while wanted says
// the precise sources cannot see.
type logindInput struct {
	every   time.Duration
	wanted  func() bool
	connect func(...dbus.ConnOption) (*dbus.Conn, error)

	mu     sync.Mutex
	conn   *dbus.Conn
	at     time.Time
	last   time.Time
	known  bool
	absent bool
}

// logind's names on the bus.
const (
	logindService = "org.freedesktop.login1"
	logindPath    = "/org/freedesktop/login1"
	logindManager = "org.freedesktop.login1.Manager"
)

func (l *logindInput) LastInput(now time.Time) (time.Time, bool) {
	if !l.wanted() {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.absent {
		return time.Time{}, false
	}
	if !l.at.IsZero() && now.Sub(l.at) < l.every {
		return l.hint(now)
	}
	l.at = now
	idle, since, err := l.ask()
	if err != nil {
		l.known = false
		return time.Time{}, false
	}
	// A hint never set (no desktop ever said) tells nothing.
	l.known = since > 0
	if idle {
		l.last = time.UnixMicro(int64(since))
	} else {
		l.last = time.Time{} // not idle: the person is there now
	}
	return l.hint(now)
}

// ask reads the two properties, connecting (again) as needed. A bus with no
// logind on it is remembered, and not asked again.
func (l *logindInput) ask() (idle bool, since uint64, err error) {
	if l.conn == nil {
		if l.conn, err = l.connect(); err != nil {
			l.absent = true
			return false, 0, err
		}
	}
	obj := l.conn.Object(logindService, logindPath)
	v, err := obj.GetProperty(logindManager + ".IdleHint")
	if err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" {
			l.absent = true
		}
		l.conn.Close()
		l.conn = nil
		return false, 0, err
	}
	if err := v.Store(&idle); err != nil {
		return false, 0, err
	}
	v, err = obj.GetProperty(logindManager + ".IdleSinceHint")
	if err != nil {
		return false, 0, err
	}
	return idle, since, v.Store(&since)
}

func (l *logindInput) hint(now time.Time) (time.Time, bool) {
	if !l.known {
		return time.Time{}, false
	}
	if l.last.IsZero() {
		return now, true
	}
	return l.last, true
}

func (l *logindInput) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}
