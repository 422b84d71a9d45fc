// Package worker builds Transit's Temporal worker: it registers the
// deployment workflow and the activities with their dependencies.
package worker

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/notify"
	"github.com/transit-hq/transit/store"
	"github.com/transit-hq/transit/workflows"
)

// Options configures a worker.
type Options struct {
	TaskQueue string
	Store     *store.Store
	Logger    *slog.Logger
	// Clock defaults to the wall clock; tests and benchmarks may speed up
	// early life support with a faster one.
	Clock activities.Clock
	// Drivers defaults to DefaultDrivers(Store, Logger).
	Drivers *drivers.Registry
	// MaxConcurrentActivities bounds the activities this worker runs at once (0: SDK default).
	MaxConcurrentActivities int
	// WorkflowCacheSize is how many workflows the process keeps in memory
	// between their tasks (0: the SDK's default, 10,000). It is the
	// process's, shared by its workers, and takes effect before the first
	// worker starts.
	WorkflowCacheSize int
	// VoteKey is the key the API signs votes and controls with; the same
	// as the API's. Without it, every vote has its subject looked up.
	VoteKey []byte
	// StoreOutage is how long a target step waits out a database outage
	// (activities.DefaultStoreOutage when zero).
	StoreOutage time.Duration
	// TargetsPerRun bounds the targets one workflow run changes
	// (activities.DefaultTargetsPerRun when zero).
	TargetsPerRun int
}

// DefaultDrivers returns the script, http and simulated drivers, the
// simulated one keeping its targets' versions in the store.
func DefaultDrivers(st *store.Store, logger *slog.Logger) *drivers.Registry {
	return drivers.NewRegistry(map[string]drivers.Driver{
		models.DriverScript:    drivers.NewScript(drivers.ScriptOptions{Logger: logger}),
		models.DriverHTTP:      drivers.NewHTTP(drivers.HTTPOptions{Logger: logger}),
		models.DriverSimulated: drivers.NewSimulated(st, drivers.SimulatedOptions{Logger: logger}),
	})
}

// New returns a worker on opt.TaskQueue with Transit's workflow and activities registered.
func New(c client.Client, opt Options) sdkworker.Worker {
	if opt.TaskQueue == "" {
		opt.TaskQueue = models.DefaultTaskQueue
	}
	if opt.Drivers == nil {
		opt.Drivers = DefaultDrivers(opt.Store, opt.Logger)
	}
	if opt.Clock == nil {
		opt.Clock = activities.RealClock{}
	}
	if opt.WorkflowCacheSize > 0 {
		sdkworker.SetStickyWorkflowCacheSize(opt.WorkflowCacheSize)
	}
	// Notifications: started as the writes that queue them return, and
	// swept for at start-up and every minute (activities/notify.go).
	notifier := &notify.Notifier{Store: opt.Store, Temporal: c, TaskQueue: opt.TaskQueue, Logger: opt.Logger}
	w := sdkworker.New(c, opt.TaskQueue, WithPollers(sdkworker.Options{
		MaxConcurrentActivityExecutionSize: opt.MaxConcurrentActivities,
		WorkerStopTimeout:                  10 * time.Second,
		Interceptors:                       append(Interceptors(opt.VoteKey), notifier.Interceptor()),
	}))
	Register(w, &activities.Activities{Store: opt.Store, Drivers: opt.Drivers, Clock: opt.Clock, Logger: opt.Logger, Temporal: c,
		StoreOutage: opt.StoreOutage, TargetsPerRun: opt.TargetsPerRun})
	return &sweepingWorker{Worker: w, notifier: notifier}
}

// WithPollers sets how a worker polls for tasks: pollers that scale with
// the work (5 at first, then from 2 up to 100 of each kind) rather than the
// SDK's fixed 2.
// With 2, twenty deployments at once wait about 60 to 90 ms for each of
// their workflow tasks to be handed out, and a deployment has several in a
// row; scaled, `make bench` runs about 60% more deployments a second. An
// idle poller is one long poll held open on the server: a few KiB.
func WithPollers(o sdkworker.Options) sdkworker.Options {
	scaled := sdkworker.PollerBehaviorAutoscalingOptions{InitialNumberOfPollers: 5, MinimumNumberOfPollers: 2, MaximumNumberOfPollers: 100}
	o.WorkflowTaskPollerBehavior = sdkworker.NewPollerBehaviorAutoscaling(scaled)
	o.ActivityTaskPollerBehavior = sdkworker.NewPollerBehaviorAutoscaling(scaled)
	return o
}

// sweepingWorker runs the notification sweeper while the worker runs.
type sweepingWorker struct {
	sdkworker.Worker
	notifier *notify.Notifier
	stop     context.CancelFunc
	done     chan struct{}
}

func (w *sweepingWorker) Start() error {
	if err := w.Worker.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop, w.done = cancel, make(chan struct{})
	go func() { defer close(w.done); w.notifier.Run(ctx, notify.SweepEvery) }()
	return nil
}

func (w *sweepingWorker) Run(interruptCh <-chan interface{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.notifier.Run(ctx, notify.SweepEvery) }()
	defer func() { cancel(); <-done }()
	return w.Worker.Run(interruptCh)
}

func (w *sweepingWorker) Stop() {
	if w.stop != nil {
		w.stop()
		<-w.done
	}
	w.Worker.Stop()
}

// Interceptors are the worker interceptors the deployment workflow needs
// (see workflows.Interceptor): a worker, a replayer and a test environment
// all use them.
func Interceptors(voteKey []byte) []interceptor.WorkerInterceptor {
	return []interceptor.WorkerInterceptor{workflows.Interceptor(voteKey)}
}

// Registry is what Register needs: a worker, or a workflow replayer.
type Registry interface {
	RegisterWorkflowWithOptions(w interface{}, options workflow.RegisterOptions)
}

type activityRegistry interface {
	RegisterActivity(a interface{})
}

// Register registers the deployment workflow under its stable name and the activities.
func Register(r Registry, acts *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.Deployment, workflow.RegisterOptions{Name: models.WorkflowDeployment})
	r.RegisterWorkflowWithOptions(workflows.TargetSteps, workflow.RegisterOptions{Name: models.WorkflowTargetSteps})
	r.RegisterWorkflowWithOptions(workflows.Notification, workflow.RegisterOptions{Name: models.WorkflowNotification})
	if ar, ok := r.(activityRegistry); ok && acts != nil {
		ar.RegisterActivity(acts)
	}
}
