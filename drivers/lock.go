package drivers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultLockDir is where the script driver keeps one lock file per step.
func DefaultLockDir() string { return filepath.Join(os.TempDir(), "transit-script-locks") }

// stepLock is an exclusive lock on a file named after a step's idempotency
// key. The script's processes inherit its descriptor (as fd 3), so the lock
// is held for as long as any process of that run lives, even after the
// worker that started it died: a retry of the step on this host cannot run
// beside it.
type stepLock struct {
	f *os.File
}

// lockStep takes the lock of key. If an earlier run of the step still holds
// it (its worker died, and Temporal retries the step), that run is over as
// far as Temporal is concerned: its process group gets SIGTERM, then
// SIGKILL after grace, and the lock is taken once it is free.
func lockStep(ctx context.Context, dir, key string, grace time.Duration, progress func(string)) (*stepLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the lock folder %s: %w", dir, err)
	}
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(dir, hex.EncodeToString(sum[:16])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the lock of step %s: %w", key, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		return &stepLock{f: f}, nil
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("lock step %s: %w", key, err)
	}
	// An earlier run of this step still lives: end it.
	pgid := readPGID(f)
	if progress != nil {
		progress(fmt.Sprintf("an earlier run of this step (process group %d) is still running: ending it", pgid))
	}
	if pgid > 1 {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	killAt := time.Now().Add(grace)
	killed := false
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return &stepLock{f: f}, nil
		}
		if !killed && time.Now().After(killAt) && pgid > 1 {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			killed = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for an earlier run of step %s to end: %w", key, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// setPGID records the process group that runs the step now, for a later
// run to find if this one's worker dies.
func (l *stepLock) setPGID(pgid int) {
	if l == nil {
		return
	}
	_ = l.f.Truncate(0)
	_, _ = l.f.WriteAt([]byte(strconv.Itoa(pgid)+"\n"), 0)
}

// file is the descriptor the step's processes inherit.
func (l *stepLock) file() *os.File {
	if l == nil {
		return nil
	}
	return l.f
}

// release drops this process's hold; the lock is free once the step's
// processes have gone too.
func (l *stepLock) release() {
	if l != nil {
		_ = l.f.Close()
	}
}

func readPGID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pgid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pgid
}
