package runcore_test

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
)

func TestDefineMetric(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{})
	def, err := run.DefineMetric(ctx, "val/*", runcore.WithStepMetric("epoch"))
	if err != nil {
		t.Fatal(err)
	}
	if def.Name != "val/*" || def.StepMetric != "epoch" || !def.StepSync {
		t.Errorf("definition = %+v; want step_sync on by default with a step metric", def)
	}
	def, err = run.DefineMetric(ctx, "val/loss", runcore.WithStepMetric("epoch"),
		runcore.WithSummary("min", "best"), runcore.WithGoal(runcore.Minimize))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(def.Summary, []string{"min", "best"}) || def.Goal != "minimize" {
		t.Errorf("definition = %+v", def)
	}
	// overwrite=false merges: the earlier summary stays, hidden is added.
	def, err = run.DefineMetric(ctx, "val/loss", runcore.WithHidden(true), runcore.WithOverwrite(false))
	if err != nil {
		t.Fatal(err)
	}
	if !def.Hidden || !reflect.DeepEqual(def.Summary, []string{"min", "best"}) || def.StepMetric != "epoch" {
		t.Errorf("merged definition = %+v", def)
	}
	if _, err := run.DefineMetric(ctx, "acc", runcore.WithSummary("max", "mean"), runcore.WithStepSync(false)); err != nil {
		t.Fatal(err)
	}

	for i, loss := range []float64{0.9, 0.3, 0.5} {
		if err := run.Log(map[string]any{"epoch": i + 1}); err != nil {
			t.Fatal(err)
		}
		if err := run.Log(map[string]any{"val/loss": loss, "acc": float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	summary, err := run.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"min": 0.3, "best": 0.3}; !reflect.DeepEqual(summary["val/loss"], want) {
		t.Errorf("summary[val/loss] = %v, want %v", summary["val/loss"], want)
	}
	if want := map[string]any{"max": 2.0, "mean": 1.0}; !reflect.DeepEqual(summary["acc"], want) {
		t.Errorf("summary[acc] = %v, want %v", summary["acc"], want)
	}
	// step_sync filled the epoch into the val rows, which lack it.
	rows := history(t, shared.client, run.ID())
	if len(rows) != 6 || rows[1]["epoch"] != int64(1) || rows[5]["epoch"] != int64(3) {
		t.Errorf("history = %v", rows)
	}
}

func TestDefineMetricBadInput(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{})
	_, err := run.DefineMetric(ctx, "loss", runcore.WithSummary("best"))
	wantStatus(t, err, "DefineMetric", codes.InvalidArgument,
		`define_metric: summary "best" needs goal="minimize" or goal="maximize"`)
	_, err = run.DefineMetric(ctx, "a*b")
	wantStatus(t, err, "DefineMetric", codes.InvalidArgument,
		`define_metric: name "a*b" has '*' before its end; only a trailing '*' (a prefix glob such as "val/*") is supported`)
}

func TestUpdateConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{Config: map[string]any{"lr": 0.1, "layers": 2}})
	config, err := run.UpdateConfig(ctx, map[string]any{"lr": 0.05, "opt": map[string]any{"name": "sgd"}}, "layers")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"lr": 0.05, "opt": map[string]any{"name": "sgd"}}
	if !reflect.DeepEqual(config, want) {
		t.Errorf("config = %v, want %v", config, want)
	}
	got := getRun(t, shared.client, run.ID()).GetConfig()
	if len(got) != 2 || runcore.FromValue(got["lr"]) != 0.05 {
		t.Errorf("sidecar config = %v", got)
	}

	_, err = run.UpdateConfig(ctx, map[string]any{"": 1})
	wantStatus(t, err, "UpdateConfig", codes.InvalidArgument, "config has an empty key")
}

func TestSetSummary(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	run := newRun(t, runcore.Options{})
	for _, v := range []float64{3, 1, 2} {
		if err := run.Log(map[string]any{"loss": v, "acc": v / 10}); err != nil {
			t.Fatal(err)
		}
	}
	// The summary is the last value; an explicit value wins over it, also when
	// later rows arrive, until it is removed.
	summary, err := run.SetSummary(ctx, map[string]any{"loss": 0.5, "note": "best run"})
	if err != nil {
		t.Fatal(err)
	}
	if summary["loss"] != 0.5 || summary["acc"] != 0.2 || summary["note"] != "best run" {
		t.Errorf("summary = %v", summary)
	}
	if err := run.Log(map[string]any{"loss": 9.0}); err != nil {
		t.Fatal(err)
	}
	if summary, err = run.Summary(ctx); err != nil || summary["loss"] != 0.5 {
		t.Errorf("summary after a later row = %v (%v); the explicit 0.5 should win", summary, err)
	}
	if summary, err = run.SetSummary(ctx, nil, "loss", "note"); err != nil {
		t.Fatal(err)
	}
	// Removing drops the key, explicit and aggregated; the next row brings it back.
	if _, ok := summary["note"]; ok {
		t.Errorf("note not removed: %v", summary)
	}
	if _, ok := summary["loss"]; ok {
		t.Errorf("loss not removed: %v", summary)
	}
	if err := run.Log(map[string]any{"loss": 4.0}); err != nil {
		t.Fatal(err)
	}
	res, err := run.Finish(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary["loss"] != 4.0 || res.Summary["_step"] != int64(4) {
		t.Errorf("final summary = %v; want loss 4 from the last row", res.Summary)
	}

	run2 := newRun(t, runcore.Options{})
	_, err = run2.SetSummary(ctx, map[string]any{"": 1})
	wantStatus(t, err, "SetSummary", codes.InvalidArgument, "summary has an empty key")
}
