package drivers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/transit-hq/transit/models"
)

// Script driver defaults.
const (
	// DefaultScriptTimeout bounds one run of a target's command.
	DefaultScriptTimeout = models.DefaultScriptTimeout
	// DefaultKillGrace is the time a process group has between SIGTERM and
	// SIGKILL.
	DefaultKillGrace = models.DefaultKillGrace
	// DefaultProgressInterval is how often Progress is called while a
	// command runs.
	DefaultProgressInterval = 5 * time.Second
	// DefaultOutputTailKiB is how much of the end of the output Result.Log keeps.
	DefaultOutputTailKiB = 16
)

// ScriptOptions tune the script driver; the zero value is usable.
type ScriptOptions struct {
	// KillGrace is the time between SIGTERM and SIGKILL to the command's
	// process group when the step is cancelled or times out
	// (DefaultKillGrace when zero).
	KillGrace time.Duration
	// ProgressInterval is how often Request.Progress is called while the
	// command runs (DefaultProgressInterval when zero).
	ProgressInterval time.Duration
	// Logger gets a line per command run (slog.Default() when nil).
	Logger *slog.Logger
	// LockDir holds one lock file per step (DefaultLockDir() when empty):
	// a retry of a step never runs beside an earlier run of it on this host.
	LockDir string
}

// Script runs the command configured on the target (models.ScriptConfig)
// with TRANSIT_ACTION set to deploy, rollback, remove or current.
//
// The command runs without a shell unless Shell is set; then it runs as
// /bin/sh -c COMMAND transit-script ARGS..., so that ARGS are $1, $2 … It
// sees the worker's environment, the config's Env and the TRANSIT_*
// variables (see transitEnv), in its own process group: on cancellation or
// timeout the whole group gets SIGTERM, then SIGKILL after the grace period.
// Processes it leaves running after a normal exit are left alone.
//
// For current, the trimmed last line of stdout is the version ("" for
// none) and a non-zero exit means the target is unreachable.
type Script struct {
	opts ScriptOptions
	log  *slog.Logger
}

var _ Driver = (*Script)(nil)

// NewScript returns the script driver.
func NewScript(opts ScriptOptions) *Script {
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	if opts.LockDir == "" {
		opts.LockDir = DefaultLockDir()
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Script{opts: opts, log: log.With("driver", models.DriverScript)}
}

// Deploy runs the command with TRANSIT_ACTION=deploy, unless current
// already reports the release's version.
func (s *Script) Deploy(ctx context.Context, req Request) (Result, error) {
	cfg, err := scriptConfig(req.Target)
	if err != nil {
		return Result{}, err
	}
	lock, err := s.lock(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer lock.release()
	req.lock = lock
	current, err := s.current(ctx, cfg, req.Target, req.Progress, lock)
	switch {
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("deploy %s to target %s: %w", req.Release.Version, req.Target.Name, err)
	case err != nil:
		// A script may not implement current; the deploy decides.
		s.log.WarnContext(ctx, "current version unknown before deploy; deploying anyway",
			"target", req.Target.Name, "version", req.Release.Version, "error", err)
	case current != "" && current == req.Release.Version:
		s.log.InfoContext(ctx, "target already runs the version; deploy skipped",
			"target", req.Target.Name, "version", current)
		return Result{Version: current, Log: fmt.Sprintf("target %s already runs %s; deploy skipped\n", req.Target.Name, current)}, nil
	}
	out, err := s.run(ctx, cfg, ActionDeploy, req, false)
	if err != nil {
		return Result{Log: out.Output}, fmt.Errorf("deploy %s to target %s: %w", req.Release.Version, req.Target.Name, err)
	}
	return Result{Version: req.Release.Version, Log: out.Output}, nil
}

// Rollback runs the command with TRANSIT_ACTION=rollback and
// TRANSIT_RELEASE_VERSION set to the version rolled back to.
func (s *Script) Rollback(ctx context.Context, req Request) (Result, error) {
	cfg, err := scriptConfig(req.Target)
	if err != nil {
		return Result{}, err
	}
	lock, err := s.lock(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer lock.release()
	req.lock = lock
	out, err := s.run(ctx, cfg, ActionRollback, req, false)
	if err != nil {
		return Result{Log: out.Output}, fmt.Errorf("roll target %s back to %s: %w", req.Target.Name, req.Release.Version, err)
	}
	return Result{Version: req.Release.Version, Log: out.Output}, nil
}

// Remove runs the command with TRANSIT_ACTION=remove (and
// TRANSIT_RETAIN_DATA).
func (s *Script) Remove(ctx context.Context, req Request) (Result, error) {
	cfg, err := scriptConfig(req.Target)
	if err != nil {
		return Result{}, err
	}
	lock, err := s.lock(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer lock.release()
	req.lock = lock
	out, err := s.run(ctx, cfg, ActionRemove, req, false)
	if err != nil {
		return Result{Log: out.Output}, fmt.Errorf("remove release from target %s: %w", req.Target.Name, err)
	}
	return Result{Version: "", Log: out.Output}, nil
}

// Current runs the command with TRANSIT_ACTION=current and returns the last
// line of its stdout.
func (s *Script) Current(ctx context.Context, t Target) (string, error) {
	cfg, err := scriptConfig(t)
	if err != nil {
		return "", err
	}
	return s.current(ctx, cfg, t, nil, nil)
}

// lock takes the step's lock (none without an idempotency key).
func (s *Script) lock(ctx context.Context, req Request) (*stepLock, error) {
	if req.IdempotencyKey == "" {
		return nil, nil
	}
	return lockStep(ctx, s.opts.LockDir, req.IdempotencyKey, s.opts.KillGrace, req.Progress)
}

func (s *Script) current(ctx context.Context, cfg models.ScriptConfig, t Target, progress func(string), lock *stepLock) (string, error) {
	out, err := s.run(ctx, cfg, ActionCurrent, Request{Target: t, Progress: progress, lock: lock}, true)
	switch {
	case err != nil && ctx.Err() != nil:
		return "", fmt.Errorf("current version of target %s: %w", t.Name, err)
	case err != nil:
		return "", fmt.Errorf("current version of target %s: %w: %w", t.Name, ErrUnreachable, err)
	}
	return lastLine(out.Stdout), nil
}

func (s *Script) run(ctx context.Context, cfg models.ScriptConfig, action string, req Request, separateStdout bool) (commandResult, error) {
	path, args := cfg.Command, cfg.Args
	if cfg.Shell {
		path, args = "/bin/sh", append([]string{"-c", cfg.Command, "transit-script"}, cfg.Args...)
	}
	timeout := cfg.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultScriptTimeout
	}
	tailKiB := cfg.OutputTailKiB
	if tailKiB <= 0 {
		tailKiB = DefaultOutputTailKiB
	}
	env := os.Environ()
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+cfg.Env[k])
	}
	env = append(env, transitEnv(action, req)...)

	out, err := runCommand(ctx, command{
		Label:          "script " + action,
		Path:           path,
		Args:           args,
		Dir:            cfg.Workdir,
		Env:            env,
		Timeout:        timeout,
		Grace:          s.opts.KillGrace,
		TailBytes:      tailKiB * 1024,
		Progress:       req.Progress,
		ProgressEvery:  s.opts.ProgressInterval,
		SeparateStdout: separateStdout,
		Lock:           req.lock,
	})
	attrs := []any{"target", req.Target.Name, "action", action, "exit_code", out.ExitCode,
		"duration", out.Duration.Round(time.Millisecond)}
	if out.Stopped != "" {
		attrs = append(attrs, "stopped", out.Stopped)
	}
	if err != nil {
		s.log.WarnContext(ctx, "script failed", append(attrs, "error", err)...)
	} else {
		s.log.InfoContext(ctx, "script finished", attrs...)
	}
	return out, err
}

func scriptConfig(t Target) (models.ScriptConfig, error) {
	var cfg models.ScriptConfig
	if err := models.DecodeStrict(t.Config, &cfg); err != nil {
		return cfg, fmt.Errorf("script config of target %s: %w", t.Name, err)
	}
	if cfg.Command == "" {
		return cfg, fmt.Errorf("script config of target %s: command is required", t.Name)
	}
	return cfg, nil
}
