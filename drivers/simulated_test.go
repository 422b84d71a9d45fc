package drivers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func newTestSimulated(store VersionStore, failVersions ...string) *Simulated {
	fail := map[string]bool{}
	for _, v := range failVersions {
		fail[v] = true
	}
	return NewSimulated(store, SimulatedOptions{FailVersions: fail, ProgressInterval: 20 * time.Millisecond, Logger: quietLogger})
}

func TestSimulatedDeployRollbackRemove(t *testing.T) {
	store := NewMemoryVersionStore()
	s := newTestSimulated(store)
	tgt := testTarget(t, models.DriverSimulated, models.SimulatedConfig{})
	ctx := context.Background()

	v, err := s.Current(ctx, tgt)
	require.NoError(t, err)
	require.Empty(t, v)

	res, err := s.Deploy(ctx, Request{Target: tgt, Release: testRelease("1.1.0"), IdempotencyKey: "a"})
	require.NoError(t, err)
	require.Equal(t, "1.1.0", res.Version)
	stored, err := store.SimulatedVersion(ctx, tgt.ID)
	require.NoError(t, err)
	require.Equal(t, "1.1.0", stored, "the version is kept by target ID")

	res, err = s.Rollback(ctx, Request{Target: tgt, Release: testRelease("1.0.0"), Previous: "1.1.0"})
	require.NoError(t, err)
	require.Equal(t, "1.0.0", res.Version)
	v, err = s.Current(ctx, tgt)
	require.NoError(t, err)
	require.Equal(t, "1.0.0", v)

	res, err = s.Remove(ctx, Request{Target: tgt})
	require.NoError(t, err)
	require.Empty(t, res.Version)
	v, err = s.Current(ctx, tgt)
	require.NoError(t, err)
	require.Empty(t, v)
}

func TestSimulatedDeployIsIdempotent(t *testing.T) {
	store := NewMemoryVersionStore()
	s := newTestSimulated(store)
	// Every real change fails; one that finds the version in place cannot.
	tgt := testTarget(t, models.DriverSimulated, models.SimulatedConfig{FailureRate: 1})
	require.NoError(t, store.SetSimulatedVersion(context.Background(), tgt.ID, "2.0.0"))

	res, err := s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("2.0.0"), IdempotencyKey: "k"})
	require.NoError(t, err)
	require.Equal(t, "2.0.0", res.Version)
	require.Contains(t, res.Log, "nothing to do")

	_, err = s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("2.1.0"), IdempotencyKey: "k"})
	require.ErrorIs(t, err, ErrSimulatedFailure)
}

func TestSimulatedUnreachable(t *testing.T) {
	s := newTestSimulated(NewMemoryVersionStore())
	tgt := testTarget(t, models.DriverSimulated, models.SimulatedConfig{Unreachable: true})
	_, err := s.Current(context.Background(), tgt)
	require.ErrorIs(t, err, ErrUnreachable)
	_, err = s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.ErrorIs(t, err, ErrUnreachable)
}

func TestSimulatedFailVersions(t *testing.T) {
	store := NewMemoryVersionStore()
	s := newTestSimulated(store, "6.6.6")
	tgt := testTarget(t, models.DriverSimulated, models.SimulatedConfig{})
	ctx := context.Background()
	_, err := s.Deploy(ctx, Request{Target: tgt, Release: testRelease("6.6.5")})
	require.NoError(t, err)

	for i := range 3 {
		res, err := s.Deploy(ctx, Request{Target: tgt, Release: testRelease("6.6.6"), IdempotencyKey: fmt.Sprint("key-", i)})
		require.ErrorIs(t, err, ErrSimulatedFailure)
		require.Contains(t, err.Error(), "version 6.6.6 is set to fail")
		require.Equal(t, "6.6.5", res.Version, "a failed deploy leaves the old version")
	}
	v, err := s.Current(ctx, tgt)
	require.NoError(t, err)
	require.Equal(t, "6.6.5", v)
}

// outcomes deploys to n targets with one key each, on a fresh store, and
// returns which deploys failed.
func outcomes(t *testing.T, cfg models.SimulatedConfig, keyPrefix string, n int) []bool {
	t.Helper()
	s := newTestSimulated(NewMemoryVersionStore())
	failed := make([]bool, n)
	for i := range n {
		tgt := testTarget(t, models.DriverSimulated, cfg)
		tgt.ID = fmt.Sprint("tgt-", i)
		_, err := s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), IdempotencyKey: fmt.Sprint(keyPrefix, i)})
		if err != nil {
			require.ErrorIs(t, err, ErrSimulatedFailure)
			failed[i] = true
		}
	}
	return failed
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func TestSimulatedFailureIsDeterministic(t *testing.T) {
	cfg := models.SimulatedConfig{FailureRate: 0.3, Seed: 42}
	first := outcomes(t, cfg, "dep-1/", 200)
	again := outcomes(t, cfg, "dep-1/", 200)
	require.Equal(t, first, again, "the same seed and keys give the same failures")
	require.InDelta(t, 60, count(first), 25, "about 30%% of 200 fail")

	otherKeys := outcomes(t, cfg, "dep-2/", 200)
	require.NotEqual(t, first, otherKeys, "other keys fail elsewhere")
	otherSeed := outcomes(t, models.SimulatedConfig{FailureRate: 0.3, Seed: 43}, "dep-1/", 200)
	require.NotEqual(t, first, otherSeed, "another seed fails elsewhere")

	require.Zero(t, count(outcomes(t, models.SimulatedConfig{FailureRate: 0}, "k", 50)))
	require.Equal(t, 50, count(outcomes(t, models.SimulatedConfig{FailureRate: 1}, "k", 50)))
}

func TestSimulatedRetryOfSameKeyFailsAgain(t *testing.T) {
	cfg := models.SimulatedConfig{FailureRate: 0.5, Seed: 7}
	failed := outcomes(t, cfg, "step-", 20)
	i := 0
	for !failed[i] {
		i++
	}
	s := newTestSimulated(NewMemoryVersionStore())
	tgt := testTarget(t, models.DriverSimulated, cfg)
	tgt.ID = fmt.Sprint("tgt-", i)
	for range 3 {
		_, err := s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), IdempotencyKey: fmt.Sprint("step-", i)})
		require.ErrorIs(t, err, ErrSimulatedFailure)
	}
}

func TestSimulatedLatencyAndProgress(t *testing.T) {
	s := newTestSimulated(NewMemoryVersionStore())
	tgt := testTarget(t, models.DriverSimulated, models.SimulatedConfig{
		LatencyMin: models.Duration(150 * time.Millisecond),
		LatencyMax: models.Duration(250 * time.Millisecond),
	})
	var p progressRecorder
	start := time.Now()
	res, err := s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), IdempotencyKey: "k", Progress: p.record})
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.GreaterOrEqual(t, elapsed, 150*time.Millisecond)
	require.Less(t, elapsed, time.Second)
	require.GreaterOrEqual(t, len(p.all()), 5, "progress every 20ms")
	require.Contains(t, p.all()[0], "simulated deploy running")
	require.Contains(t, res.Log, "took")
}

func TestSimulatedLatencyIsSeeded(t *testing.T) {
	cfg := models.SimulatedConfig{LatencyMin: models.Duration(time.Second), LatencyMax: models.Duration(time.Hour), Seed: 3}
	draw := func(key string) time.Duration {
		return drawLatency(seededRand(cfg.Seed, ActionDeploy, "tgt-01", key), cfg.LatencyMin.D(), cfg.LatencyMax.D())
	}
	require.Equal(t, draw("a"), draw("a"))
	require.NotEqual(t, draw("a"), draw("b"))
	for _, k := range []string{"a", "b", "c", "d"} {
		d := draw(k)
		require.GreaterOrEqual(t, d, time.Second)
		require.LessOrEqual(t, d, time.Hour)
	}
	require.Equal(t, 5*time.Second, drawLatency(seededRand(1), 5*time.Second, 0), "no max: the min")
}

func TestSimulatedCancelDuringLatency(t *testing.T) {
	store := NewMemoryVersionStore()
	s := newTestSimulated(store)
	tgt := testTarget(t, models.DriverSimulated, models.SimulatedConfig{LatencyMin: models.Duration(time.Minute)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Deploy(ctx, Request{Target: tgt, Release: testRelease("1.0.0")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second)
	v, err := store.SimulatedVersion(context.Background(), tgt.ID)
	require.NoError(t, err)
	require.Empty(t, v, "a cancelled deploy changes nothing")
}
