package drivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/transit-hq/transit/models"
)

// ErrSimulatedFailure marks a failure the simulated driver made up.
var ErrSimulatedFailure = errors.New("simulated failure")

// VersionStore keeps what runs on simulated targets (the database, in production).
type VersionStore interface {
	SimulatedVersion(ctx context.Context, targetID string) (string, error)
	SetSimulatedVersion(ctx context.Context, targetID, version string) error
}

// MemoryVersionStore is a VersionStore in memory, for tests and benchmarks.
type MemoryVersionStore struct {
	mu       sync.Mutex
	versions map[string]string
}

var _ VersionStore = (*MemoryVersionStore)(nil)

// NewMemoryVersionStore returns an empty store: every target runs "".
func NewMemoryVersionStore() *MemoryVersionStore {
	return &MemoryVersionStore{versions: map[string]string{}}
}

// SimulatedVersion returns the version on targetID, "" for none.
func (m *MemoryVersionStore) SimulatedVersion(_ context.Context, targetID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[targetID], nil
}

// SetSimulatedVersion records version on targetID; "" removes it.
func (m *MemoryVersionStore) SetSimulatedVersion(_ context.Context, targetID, version string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if version == "" {
		delete(m.versions, targetID)
		return nil
	}
	m.versions[targetID] = version
	return nil
}

// SimulatedOptions tune the simulated driver; the zero value is usable.
type SimulatedOptions struct {
	// FailVersions are versions whose deploys always fail (rollbacks to
	// them succeed), for tests and demos of rollbacks.
	FailVersions map[string]bool
	// ProgressInterval is how often Request.Progress is called during the
	// simulated latency (DefaultProgressInterval when zero).
	ProgressInterval time.Duration
	// Logger gets a line per change (slog.Default() when nil).
	Logger *slog.Logger
}

// Simulated pretends to change targets (models.SimulatedConfig) and keeps
// their versions in a VersionStore, keyed by target ID (by name when the ID
// is empty).
//
// Each change takes a latency drawn uniformly from [latency_min,
// latency_max] and fails with probability failure_rate. Both draws come
// from a PRNG seeded by the config's seed, the action, the target and the
// idempotency key: a given seed and key always give the same latency and
// the same outcome, so a retry of a failed step fails again. That is on
// purpose: failure_rate is then the share of steps that fail for good,
// whatever the retry policy, and a seed replays the same run of a demo or a
// benchmark. A change that finds the target already in the wanted state is
// a no-op that takes no time and cannot fail. An unreachable target fails
// every action.
type Simulated struct {
	store VersionStore
	opts  SimulatedOptions
	log   *slog.Logger
}

var _ Driver = (*Simulated)(nil)

// NewSimulated returns the simulated driver over store.
func NewSimulated(store VersionStore, opts SimulatedOptions) *Simulated {
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Simulated{store: store, opts: opts, log: log.With("driver", models.DriverSimulated)}
}

// Deploy records req.Release.Version on the target, unless it fails.
func (s *Simulated) Deploy(ctx context.Context, req Request) (Result, error) {
	res, err := s.change(ctx, ActionDeploy, req, req.Release.Version)
	if err != nil {
		return res, fmt.Errorf("deploy %s to target %s: %w", req.Release.Version, req.Target.Name, err)
	}
	return res, nil
}

// Rollback records req.Release.Version, the version rolled back to.
func (s *Simulated) Rollback(ctx context.Context, req Request) (Result, error) {
	res, err := s.change(ctx, ActionRollback, req, req.Release.Version)
	if err != nil {
		return res, fmt.Errorf("roll target %s back to %s: %w", req.Target.Name, req.Release.Version, err)
	}
	return res, nil
}

// Remove records that nothing runs on the target.
func (s *Simulated) Remove(ctx context.Context, req Request) (Result, error) {
	res, err := s.change(ctx, ActionRemove, req, "")
	if err != nil {
		return res, fmt.Errorf("remove release from target %s: %w", req.Target.Name, err)
	}
	return res, nil
}

// Current returns the stored version, or an error for an unreachable target.
func (s *Simulated) Current(ctx context.Context, t Target) (string, error) {
	cfg, err := simulatedConfig(t)
	if err != nil {
		return "", err
	}
	if cfg.Unreachable {
		return "", fmt.Errorf("current version of target %s: %w (simulated)", t.Name, ErrUnreachable)
	}
	v, err := s.store.SimulatedVersion(ctx, simulatedKey(t))
	if err != nil {
		return "", fmt.Errorf("current version of target %s: load simulated version: %w", t.Name, err)
	}
	return v, nil
}

func (s *Simulated) change(ctx context.Context, action string, req Request, want string) (Result, error) {
	cfg, err := simulatedConfig(req.Target)
	if err != nil {
		return Result{}, err
	}
	if cfg.Unreachable {
		return Result{}, fmt.Errorf("%w (simulated)", ErrUnreachable)
	}
	key := simulatedKey(req.Target)
	current, err := s.store.SimulatedVersion(ctx, key)
	if err != nil {
		return Result{}, fmt.Errorf("load simulated version: %w", err)
	}
	if current == want {
		return Result{Version: current, Log: fmt.Sprintf("target %s already in the wanted state (%q); nothing to do\n", req.Target.Name, current)}, nil
	}

	rng := seededRand(cfg.Seed, action, key, req.IdempotencyKey)
	latency := drawLatency(rng, cfg.LatencyMin.D(), cfg.LatencyMax.D())
	failed := rng.Float64() < cfg.FailureRate

	if err := sleepWithProgress(ctx, latency, s.opts.ProgressInterval, req.Progress, "simulated "+action); err != nil {
		return Result{}, err
	}
	summary := fmt.Sprintf("simulated %s on target %s took %s", action, req.Target.Name, latency.Round(time.Millisecond))
	switch {
	case action == ActionDeploy && s.opts.FailVersions[want]:
		s.log.InfoContext(ctx, "simulated deploy failed: version set to fail", "target", req.Target.Name, "version", want)
		return Result{Version: current, Log: summary + "; failed: version set to fail\n"},
			fmt.Errorf("%w: version %s is set to fail", ErrSimulatedFailure, want)
	case failed:
		s.log.InfoContext(ctx, "simulated change failed", "target", req.Target.Name, "action", action,
			"failure_rate", cfg.FailureRate, "seed", cfg.Seed)
		return Result{Version: current, Log: summary + "; failed by chance\n"},
			fmt.Errorf("%w: failure rate %.2f, seed %d", ErrSimulatedFailure, cfg.FailureRate, cfg.Seed)
	}
	if err := s.store.SetSimulatedVersion(ctx, key, want); err != nil {
		return Result{Version: current, Log: summary}, fmt.Errorf("record simulated version: %w", err)
	}
	s.log.InfoContext(ctx, "simulated change done", "target", req.Target.Name, "action", action,
		"version", want, "latency", latency)
	return Result{Version: want, Log: summary + "\n"}, nil
}

func simulatedConfig(t Target) (models.SimulatedConfig, error) {
	var cfg models.SimulatedConfig
	if err := models.DecodeStrict(t.Config, &cfg); err != nil {
		return cfg, fmt.Errorf("simulated config of target %s: %w", t.Name, err)
	}
	return cfg, nil
}

func simulatedKey(t Target) string {
	if t.ID != "" {
		return t.ID
	}
	return t.Name
}

// drawLatency returns a duration uniformly in [lo, hi]; lo when hi <= lo.
func drawLatency(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return max(lo, 0)
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// sleepWithProgress waits d, calling progress every interval, and returns
// early with the cause when ctx is done.
func sleepWithProgress(ctx context.Context, d, every time.Duration, progress func(string), label string) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	var tick <-chan time.Time
	if progress != nil {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		tick = ticker.C
	}
	start := time.Now()
	for {
		select {
		case <-timer.C:
			return nil
		case <-tick:
			progress(fmt.Sprintf("%s running for %s of %s", label, time.Since(start).Round(time.Second), d.Round(time.Second)))
		case <-ctx.Done():
			return fmt.Errorf("%s cancelled: %w", label, context.Cause(ctx))
		}
	}
}
