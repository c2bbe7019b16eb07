package trainer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lockFileName is the lock of a run folder: held (flock) by the process training into it, released by the
// operating system when that process ends, however it ends.
const lockFileName = ".lock"

// runLock is a held lock on a run folder.
type runLock struct{ f *os.File }

// lockRun takes the lock of the run folder dir (which must exist), or fails naming the process that holds it.
// The lock file keeps the holder's description (process id, host, start time, command line); a file left by a
// killed process holds no lock, so it never blocks a later run.
func lockRun(dir string) (*runLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the run folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder, _ := os.ReadFile(path)
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			}
			return nil, fmt.Errorf("output folder %s is in use by another run (%s): wait for it to end, or choose another -out", dir, who)
		}
		return nil, fmt.Errorf("locking the run folder %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("pid %d on %s, since %s: %s", os.Getpid(), host, time.Now().Format(time.DateTime),
		strings.Join(os.Args, " "))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(holder+"\n"), 0)
	}
	return &runLock{f: f}, nil
}

// release gives the lock back (the file stays, unlocked).
func (l *runLock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		_ = l.f.Close()
		l.f = nil
	}
}
