package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errorTailBytes bounds the output quoted in an error message; Result.Log
// holds the longer tail.
const errorTailBytes = 2048

// outputDrainTimeout bounds the wait for output once a command has exited:
// a background process it started may hold the output pipe open.
const outputDrainTimeout = 500 * time.Millisecond

// ExitError is a command that ended with a non-zero exit code or was ended
// by a signal it was not sent by Transit.
type ExitError struct {
	// Command names what ran, e.g. "script deploy" or "check smoke".
	Command string
	// Code is the exit code; -1 when a signal ended the process.
	Code int
	// Signal is the signal that ended the process, "" for an exit.
	Signal string
	// Output is the tail of the combined stdout and stderr.
	Output string
}

func (e *ExitError) Error() string {
	what := fmt.Sprintf("exited with code %d", e.Code)
	if e.Signal != "" {
		what = fmt.Sprintf("was ended by signal %s (exit code %d)", e.Signal, e.Code)
	}
	out := strings.TrimSpace(tailString(e.Output, errorTailBytes))
	if out == "" {
		return fmt.Sprintf("%s %s and printed nothing", e.Command, what)
	}
	return fmt.Sprintf("%s %s; output tail:\n%s", e.Command, what, out)
}

// command is one run of a program in a process group of its own.
type command struct {
	// Label names the run in messages: "script deploy".
	Label string
	Path  string
	Args  []string
	Dir   string
	// Env is the whole environment of the process.
	Env     []string
	Timeout time.Duration
	// Grace is the time between SIGTERM and SIGKILL to the group.
	Grace     time.Duration
	TailBytes int
	// Progress, when set, is called every ProgressEvery.
	Progress      func(detail string)
	ProgressEvery time.Duration
	// SeparateStdout keeps a tail of stdout alone as well.
	SeparateStdout bool
	// Lock, when set, is the step's lock: the process inherits it, and it
	// records the process group.
	Lock *stepLock
}

type commandResult struct {
	// Output is the tail of stdout and stderr, interleaved as written.
	Output string
	// Stdout is the tail of stdout alone, when SeparateStdout.
	Stdout   string
	ExitCode int
	// Stopped says how Transit ended the process group, "" if it exited.
	Stopped  string
	Duration time.Duration
}

// runCommand runs c and waits for it. The process leads a new process group;
// when ctx is done or c.Timeout passes, the whole group gets SIGTERM and,
// if anything of it is left after c.Grace, SIGKILL. A non-zero exit is an
// *ExitError.
func runCommand(ctx context.Context, c command) (commandResult, error) {
	start := time.Now()
	combined := newTailBuffer(c.TailBytes)
	var stdout *tailBuffer

	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	// Its own process group, so that a cancel reaches every process of it;
	// and SIGKILL when the worker dies (the thread that started it is kept
	// for as long as the process lives, see startAndWait).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if f := c.Lock.file(); f != nil {
		cmd.ExtraFiles = []*os.File{f}
	}

	// The output goes through pipes of our own rather than exec's copying
	// goroutines, so that Wait returns when the process exits even if a
	// process it left behind still holds the pipe.
	outR, outW, err := os.Pipe()
	if err != nil {
		return commandResult{}, fmt.Errorf("create output pipe for %s: %w", c.Label, err)
	}
	readers, writers := []*os.File{outR}, []*os.File{outW}
	dsts := []io.Writer{combined}
	cmd.Stdout, cmd.Stderr = outW, outW
	if c.SeparateStdout {
		stdout = newTailBuffer(c.TailBytes)
		dsts[0] = io.MultiWriter(stdout, combined)
		errR, errW, err := os.Pipe()
		if err != nil {
			closeFiles(readers)
			closeFiles(writers)
			return commandResult{}, fmt.Errorf("create error pipe for %s: %w", c.Label, err)
		}
		readers, writers = append(readers, errR), append(writers, errW)
		dsts = append(dsts, combined)
		cmd.Stderr = errW
	}
	exited := make(chan error, 1)
	if err := startAndWait(cmd, exited); err != nil {
		closeFiles(readers)
		closeFiles(writers)
		return commandResult{}, fmt.Errorf("start %s (%s): %w", c.Label, c.Path, err)
	}
	closeFiles(writers) // the child has its own copies
	var copying sync.WaitGroup
	for i, r := range readers {
		copying.Go(func() { _, _ = io.Copy(dsts[i], r) })
	}

	pgid := cmd.Process.Pid
	c.Lock.setPGID(pgid)

	var timeout <-chan time.Time
	if c.Timeout > 0 {
		timer := time.NewTimer(c.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	var tick <-chan time.Time
	if c.Progress != nil {
		every := c.ProgressEvery
		if every <= 0 {
			every = DefaultProgressInterval
		}
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		tick = ticker.C
	}

	var (
		waitErr  error
		stopped  string
		timedOut bool
		canceled bool
	)
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case <-tick:
			detail := fmt.Sprintf("%s running for %s", c.Label, time.Since(start).Round(time.Second))
			if line := combined.LastLine(); line != "" {
				detail += ": " + tailString(line, 200)
			}
			c.Progress(detail)
		case <-ctx.Done():
			canceled = true
			stopped, waitErr = stopGroup(pgid, exited, c.Grace)
			break loop
		case <-timeout:
			timedOut = true
			stopped, waitErr = stopGroup(pgid, exited, c.Grace)
			break loop
		}
	}
	drainOutput(readers, &copying)

	res := commandResult{
		Output:   combined.String(),
		ExitCode: cmd.ProcessState.ExitCode(),
		Stopped:  stopped,
		Duration: time.Since(start),
	}
	if stdout != nil {
		res.Stdout = stdout.String()
	}
	switch {
	case canceled:
		return res, fmt.Errorf("%s cancelled after %s, process group %s: %w",
			c.Label, res.Duration.Round(time.Millisecond), stopped, context.Cause(ctx))
	case timedOut:
		return res, fmt.Errorf("%s %w after %s, process group %s; output tail:\n%s",
			c.Label, ErrTimeout, c.Timeout, stopped, strings.TrimSpace(tailString(res.Output, errorTailBytes)))
	case waitErr != nil:
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) {
			return res, fmt.Errorf("wait for %s: %w", c.Label, waitErr)
		}
		xe := &ExitError{Command: c.Label, Code: ee.ExitCode(), Output: res.Output}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			xe.Signal = ws.Signal().String()
		}
		return res, xe
	}
	return res, nil
}

// startAndWait starts cmd and sends its Wait error on exited, from one
// goroutine locked to its OS thread: Linux sends a child its Pdeathsig when
// the thread that forked it ends, so that thread must outlive the child.
// The goroutine never unlocks, so its thread ends with it, after the child.
func startAndWait(cmd *exec.Cmd, exited chan<- error) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	return <-started
}

// stopGroup sends SIGTERM to the process group pgid and waits for the
// leader to exit and the group to empty; whatever is left after grace (a
// process that ignores SIGTERM, a grandchild) gets SIGKILL. It returns how
// the group ended and the leader's wait error.
func stopGroup(pgid int, exited <-chan error, grace time.Duration) (string, error) {
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var waitErr error
	for {
		select {
		case waitErr = <-exited:
			exited = nil
			if groupGone(pgid) {
				return "ended on SIGTERM", waitErr
			}
		case <-poll.C:
			if exited == nil && groupGone(pgid) {
				return "ended on SIGTERM", waitErr
			}
		case <-deadline.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			if exited != nil {
				waitErr = <-exited
			}
			return fmt.Sprintf("killed with SIGKILL after a %s grace period", grace), waitErr
		}
	}
}

// groupGone reports whether no live process is left in the process group.
// Zombies do not count: a process whose parent left before reaping it waits
// for init to do so, which may take a while (or forever in a container
// without an init), yet it holds nothing and cannot be killed.
func groupGone(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return true
	}
	return !liveMemberOnLinux(pgid)
}

// liveMemberOnLinux reports whether /proc lists a process of group pgid
// that is not a zombie; true when /proc cannot be read.
func liveMemberOnLinux(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return true
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 {
			return true
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// drainOutput waits for the output copies to finish, cutting them off
// after outputDrainTimeout, and closes the read ends.
func drainOutput(readers []*os.File, copying *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		copying.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(outputDrainTimeout):
		for _, r := range readers {
			_ = r.SetReadDeadline(time.Now())
		}
		<-done
	}
	closeFiles(readers)
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
