package runcore_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

func TestFinishStates(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	ok := newRun(t, runcore.Options{})
	if err := ok.Log(map[string]any{"x": 1.0}, runcore.WithCommit(false)); err != nil {
		t.Fatal(err)
	}
	res, err := ok.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Finish committed the pending row.
	if res.Run.State != runcore.StateFinished || res.Run.ExitCode == nil || *res.Run.ExitCode != 0 ||
		res.Run.HistoryRows != 1 || res.Summary["x"] != 1.0 || res.Run.EndTime.IsZero() {
		t.Errorf("finish = %+v", res)
	}
	// Idempotent: the same result again.
	again, err := ok.Finish(ctx, 3)
	if err != nil || again != res {
		t.Errorf("second Finish = %+v, %v", again, err)
	}
	if ok.State() != runcore.StateFinished {
		t.Errorf("State() = %q", ok.State())
	}

	failed := newRun(t, runcore.Options{})
	res, err = failed.Finish(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.State != runcore.StateFailed || *res.Run.ExitCode != 2 {
		t.Errorf("finish(2) = %+v", res.Run)
	}
}

func TestFinishBadInput(t *testing.T) {
	t.Parallel()
	run := newRun(t, runcore.Options{})
	_, err := run.Finish(testCtx(t), 1<<40)
	wantStatus(t, err, "Finish", codes.InvalidArgument, "exit code 1099511627776 does not fit an int32")

	// A context that ends first: Finish says so and can be called again.
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	_, err = run.Finish(canceled, 0)
	wantStatus(t, err, "Finish", codes.Canceled, "context canceled")

	// A row the sidecar refused: Finish ends the run and reports the loss.
	bad := newRun(t, runcore.Options{})
	if err := bad.Log(map[string]any{"h": runcore.Histogram{Values: []float64{1}, NumBins: 513}}); err != nil {
		t.Fatal(err)
	}
	res, err := bad.Finish(testCtx(t), 0)
	wantStatus(t, err, "Log", codes.InvalidArgument, `~histogram "h": num_bins 513 is over the limit of 512`)
	if res == nil || res.Run.State != runcore.StateFinished {
		t.Errorf("result = %+v; the run should still finish", res)
	}
	if res, err := run.Finish(testCtx(t), 0); err != nil || res.Run.HistoryRows != 1 {
		t.Errorf("Finish after a canceled one = %+v, %v", res, err)
	}
}

func TestMarkPreempting(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{})
	if err := run.MarkPreempting(ctx); err != nil {
		t.Fatal(err)
	}
	if got := getRun(t, shared.client, run.ID()).GetRun().GetState(); got != pb.RunState_RUN_STATE_PREEMPTING {
		t.Errorf("state = %s", got)
	}
	// Still open: logging goes on until Finish.
	if err := run.Log(map[string]any{"x": 1.0}); err != nil {
		t.Fatal(err)
	}
	res, err := run.Finish(ctx, 0)
	if err != nil || res.Run.State != runcore.StateFinished {
		t.Fatalf("finish = %+v, %v", res, err)
	}
	err = run.MarkPreempting(ctx)
	wantStatus(t, err, "MarkPreempting", codes.FailedPrecondition,
		`run "`+run.ID()+`" has ended (finished); Init it with resume="allow" to log to it again`)
}
