package workflows

import (
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/models"
)

// signalNames are the signals the deployment workflow takes, in the order
// in which early ones (see inbox.claim) are read.
var signalNames = []string{models.UpdateApprove, models.UpdateReject, models.UpdatePause, models.UpdateResume,
	models.UpdateAbort, models.UpdateRollback, models.SignalLaneFree, models.SignalPolicyChanged}

// signal is one Signal as it arrived: its name and its payload, not yet
// decoded, so that a malformed payload is refused on its own and can never
// hold up the signals behind it.
type signal struct {
	Name    string
	Payload *commonpb.Payloads
}

// inbox holds the Signals a deployment has not handled yet, in the order
// they arrived. Temporal puts each name's signals on a channel of its own,
// which loses the order between names (a reject, then an abort); the
// worker's interceptor (see Interceptor) fills the inbox instead, as each
// signal is delivered. The workflow takes them in order.
type inbox struct {
	claimed bool
	items   []signal
	// voteKey is the key the API signs votes and controls with.
	voteKey []byte
}

type inboxKey struct{}

// claim makes the inbox the deployment's: from now on the interceptor puts
// signals here. Signals delivered before the workflow's code first ran (in
// its very first task) went to the channels; they are taken from there,
// name by name.
func (b *inbox) claim(ctx workflow.Context) {
	if b.claimed {
		return
	}
	b.claimed = true
	// Only names with signals waiting get a channel: a channel costs memory
	// for as long as the workflow is cached.
	waiting := map[string]bool{}
	for _, name := range workflow.GetUnhandledSignalNames(ctx) {
		waiting[name] = true
	}
	var early []signal
	for _, name := range signalNames {
		if !waiting[name] {
			continue
		}
		ch := workflow.GetSignalChannel(ctx, name)
		for {
			var raw commonpb.Payloads
			var rv converter.RawValue
			if !ch.ReceiveAsync(&rv) {
				break
			}
			if p := rv.Payload(); p != nil {
				raw.Payloads = append(raw.Payloads, p)
			}
			early = append(early, signal{Name: name, Payload: &raw})
		}
	}
	b.items = append(early, b.items...)
}

func (b *inbox) pending() bool { return len(b.items) > 0 }

// next takes the oldest signal.
func (b *inbox) next() (signal, bool) {
	if len(b.items) == 0 {
		return signal{}, false
	}
	s := b.items[0]
	b.items[0] = signal{}
	b.items = b.items[1:]
	return s, true
}

// decode reads a signal's payload into v; a signal sent with no payload
// leaves v as it is.
func (s signal) decode(v any) error {
	if s.Payload == nil || len(s.Payload.Payloads) == 0 {
		return nil
	}
	return converter.GetDefaultDataConverter().FromPayloads(s.Payload, v)
}

// inboxOf returns the deployment's inbox. Without the interceptor the
// workflow could not see its signals in order: that is a worker built
// wrongly, so it fails loudly (the workflow task fails and is retried
// until a correct worker takes it) rather than lose signals.
func inboxOf(ctx workflow.Context) *inbox {
	b, ok := ctx.Value(inboxKey{}).(*inbox)
	if !ok {
		panic("the deployment workflow runs on a worker without workflows.Interceptor: register it (see worker.New)")
	}
	return b
}

// Interceptor returns the worker interceptor that the deployment workflow
// needs: it keeps each execution's signals in arrival order, and gives the
// workflow the key that proves a vote or a control came through Transit's
// API (nil: no request is taken as proven, every subject is looked up).
func Interceptor(voteKey []byte) interceptor.WorkerInterceptor {
	return &workerInterceptor{voteKey: voteKey}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	voteKey []byte
}

func (w *workerInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInterceptor{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next},
		inbox: &inbox{voteKey: w.voteKey}}
}

// workflowInterceptor is one execution's: it holds that execution's inbox.
type workflowInterceptor struct {
	interceptor.WorkflowInboundInterceptorBase
	inbox *inbox
}

func (i *workflowInterceptor) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	return i.Next.ExecuteWorkflow(workflow.WithValue(ctx, inboxKey{}, i.inbox), in)
}

// HandleSignal runs as each signal is delivered, in history order. Until a
// deployment claims its inbox (and for deployments started before it had
// one, which read the channels) signals go to their channels as usual.
func (i *workflowInterceptor) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	if !i.inbox.claimed {
		return i.Next.HandleSignal(ctx, in)
	}
	i.inbox.items = append(i.inbox.items, signal{Name: in.SignalName, Payload: in.Arg})
	return nil
}
