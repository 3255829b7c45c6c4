package runcore_test

import (
	"fmt"
	"os"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

// Two writers of one shared run (W&B's mode="shared"): each numbers its own
// batches and steps, rows of a step merge, the non-primary finishes alone and the
// primary ends the run.
func TestSharedRunTwoWriters(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	id := "shared-" + randomSuffix()
	no := false
	primary := newRun(t, runcore.Options{ID: id, Resume: runcore.ResumeAllow, Shared: true, Label: "rank-0"})
	worker := newRun(t, runcore.Options{
		ID: id, Resume: runcore.ResumeAllow, Shared: true, Label: "rank-1",
		Primary: &no, UpdateFinishState: &no,
	})
	for i := range 100 {
		if err := primary.Log(map[string]any{"a": float64(i)}); err != nil {
			t.Fatal(err)
		}
		if err := worker.Log(map[string]any{"b": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := worker.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.State != runcore.StateRunning || res.Writer != runcore.StateFinished {
		t.Errorf("worker finish = run %s, writer %s; want running, finished", res.Run.State, res.Writer)
	}
	res, err = primary.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Run.State != runcore.StateFinished {
		t.Errorf("primary finish = %s", res.Run.State)
	}
	client := shared.client
	rows := history(t, client, id)
	if len(rows) != 100 {
		t.Fatalf("%d history rows, want 100 (one per step, both writers merged)", len(rows))
	}
	for i, r := range rows {
		if r["a"] != float64(i) || r["b"] != float64(i) {
			t.Fatalf("row %d = %v", i, r)
		}
	}
	got := getRun(t, client, id)
	if len(got.GetWriters()) != 2 || got.GetWriters()[1].GetLabel() != "rank-1" || !got.GetRun().GetShared() {
		t.Errorf("writers = %v", got.GetWriters())
	}
}

// A second Run of a run another live writer has open, without Shared, is refused
// with the other writer's host and pid.
func TestSecondWriterWithoutSharedIsRefused(t *testing.T) {
	t.Parallel()
	id := "solo-" + randomSuffix()
	newRun(t, runcore.Options{ID: id})
	_, err := runcore.Init(testCtx(t), runcore.Options{
		Address: shared.addr, Project: "go-tests", ID: id, Resume: runcore.ResumeAllow,
	})
	wantStatus(t, err, "Init", codes.FailedPrecondition, fmt.Sprintf("~of pid %d on host", os.Getpid()))
}
