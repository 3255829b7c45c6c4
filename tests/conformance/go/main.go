// Command conformance performs the conformance scenario over grpc-go, with the
// protoc-gen-go stubs of proto/ (clients/go/gen/runcorev1, through a replace
// directive) and grpc-go's own health and reflection v1 stubs.
//
// Usage: conformance ADDRESS RUN_ID WORKDIR
//
// ADDRESS is the sidecar's address as `runcore serve --port-file` writes it
// (tcp://HOST:PORT or unix:///PATH); the client is made from that address alone.
// The scenario is tests/conformance/README.md's. Exits 1 when anything differs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

const project = "conformance"

var (
	runID    string
	workdir  string
	failures []string
	nan      = math.NaN()
)

// m is a JSON-like map: float64, int64, bool, string, nil, m and []any.
type m = map[string]any

func check(ok bool, format string, args ...any) {
	if !ok {
		what := fmt.Sprintf(format, args...)
		failures = append(failures, what)
		fmt.Printf("  MISMATCH: %s\n", what)
	}
}

// same is reflect.DeepEqual in which NaN equals NaN.
func same(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || (math.IsNaN(x) && math.IsNaN(y)))
	case m:
		y, ok := b.(m)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !same(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !same(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(a, b)
	}
}

func eq(got, want any, what string) {
	check(same(got, want), "%s: got %#v, want %#v", what, got, want)
}

// --- Values -----------------------------------------------------------------

func val(x any) *pb.Value {
	switch v := x.(type) {
	case nil:
		return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}
	case bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: v}}
	case int64:
		return &pb.Value{Kind: &pb.Value_IntValue{IntValue: v}}
	case float64:
		return &pb.Value{Kind: &pb.Value_DoubleValue{DoubleValue: v}}
	case string:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: v}}
	case m:
		return &pb.Value{Kind: &pb.Value_MapValue{MapValue: &pb.MapValue{Fields: vmap(v)}}}
	case []any:
		l := &pb.ListValue{}
		for _, e := range v {
			l.Values = append(l.Values, val(e))
		}
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: l}}
	}
	panic(fmt.Sprintf("val: %T", x))
}

func vmap(d m) map[string]*pb.Value {
	out := map[string]*pb.Value{}
	for k, v := range d {
		out[k] = val(v)
	}
	return out
}

func goval(v *pb.Value) any {
	switch k := v.GetKind().(type) {
	case *pb.Value_DoubleValue:
		return k.DoubleValue
	case *pb.Value_IntValue:
		return k.IntValue
	case *pb.Value_BoolValue:
		return k.BoolValue
	case *pb.Value_StringValue:
		return k.StringValue
	case *pb.Value_MapValue:
		return gomap(k.MapValue.GetFields())
	case *pb.Value_ListValue:
		out := []any{}
		for _, e := range k.ListValue.GetValues() {
			out = append(out, goval(e))
		}
		return out
	case *pb.Value_NullValue, nil:
		return nil
	default:
		return fmt.Sprintf("<%T>", k)
	}
}

func gomap(f map[string]*pb.Value) m {
	out := m{}
	for k, v := range f {
		out[k] = goval(v)
	}
	return out
}

func config() m {
	return m{
		"lr": 0.001, "epochs": int64(3), "arch": "mlp",
		"optimizer": m{"name": "adam", "betas": []any{0.9, 0.999},
			"schedule": m{"warmup": int64(100), "cosine": true}},
	}
}

// --- Scenario ---------------------------------------------------------------

// kv is one packed scalar; a row's scalars keep their order (the sidecar writes a
// row's keys in the order they arrive, so every language sends them in one order).
type kv struct {
	k string
	v float64
}

func row(keys []string, scalars []kv, values m, step *int64, commit *bool) *pb.Row {
	r := &pb.Row{Values: vmap(values), Step: step, Commit: commit}
	for _, s := range scalars {
		r.ScalarKeys = append(r.ScalarKeys, uint32(slices.Index(keys, s.k)))
		r.ScalarValues = append(r.ScalarValues, s.v)
	}
	return r
}

func scenario(ctx context.Context, conn *grpc.ClientConn) error {
	// 1. Health.
	health := healthpb.NewHealthClient(conn)
	for _, service := range []string{"", "runcore.v1.RunService"} {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return fmt.Errorf("health %q: %w", service, err)
		}
		eq(r.GetStatus().String(), "SERVING", fmt.Sprintf("health %q", service))
	}

	// 2. Reflection v1 lists the services.
	info, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return fmt.Errorf("reflection: %w", err)
	}
	if err := info.Send(&reflectpb.ServerReflectionRequest{
		MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{ListServices: ""},
	}); err != nil {
		return fmt.Errorf("reflection send: %w", err)
	}
	_ = info.CloseSend()
	var names []string
	replies := 0
	for {
		r, err := info.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reflection recv: %w", err)
		}
		replies++
		for _, s := range r.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
	}
	eq(int64(replies), int64(1), "reflection replies")
	check(slices.Contains(names, "runcore.v1.RunService"), "reflection lists runcore.v1.RunService: %v", names)
	check(slices.Contains(names, "grpc.health.v1.Health"), "reflection lists grpc.health.v1.Health: %v", names)

	c := pb.NewRunServiceClient(conn)

	// 3. Init.
	init, err := c.Init(ctx, &pb.InitRequest{
		Id: runID, Project: project, Name: "conformance-run", Tags: []string{"conformance"},
		Notes: "any language, unmodified", Config: vmap(config()), WorkingDir: workdir,
		SystemMetrics: &pb.SystemMetricsSettings{Disabled: true},
	})
	if err != nil {
		return fmt.Errorf("Init: %w", err)
	}
	eq(init.GetRun().GetId(), runID, "Init run.id")
	eq(init.GetRun().GetProject(), project, "Init run.project")
	eq(init.GetRun().GetName(), "conformance-run", "Init run.name")
	eq(init.GetRun().GetState().String(), "RUN_STATE_RUNNING", "Init run.state")
	eq(init.GetRun().GetPath(), project+"/"+runID, "Init run.path")
	check(strings.HasSuffix(init.GetRun().GetDir(), "/"+project+"/"+runID+"/files"), "Init run.dir: %q", init.GetRun().GetDir())
	eq(init.GetResumed(), false, "Init resumed")
	eq(init.GetStartingStep(), int64(0), "Init starting_step")
	eq(init.GetLastSeq(), uint64(0), "Init last_seq")

	// 4. DefineMetric.
	dm := func(req *pb.DefineMetricRequest) (*pb.MetricDefinition, error) {
		req.RunId = runID
		r, err := c.DefineMetric(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("DefineMetric %s: %w", req.Name, err)
		}
		return r.GetMetric(), nil
	}
	md, err := dm(&pb.DefineMetricRequest{Name: "loss", Summary: "min,max"})
	if err != nil {
		return err
	}
	eq([]any{md.GetName(), md.GetSummary(), md.GetStepMetric()}, []any{"loss", []string{"min", "max"}, ""}, "DefineMetric loss")
	md, err = dm(&pb.DefineMetricRequest{Name: "epoch", Hidden: ptr(true)})
	if err != nil {
		return err
	}
	eq([]any{md.GetName(), md.GetHidden()}, []any{"epoch", true}, "DefineMetric epoch")
	md, err = dm(&pb.DefineMetricRequest{Name: "val/*", StepMetric: "epoch", Summary: "max"})
	if err != nil {
		return err
	}
	eq([]any{md.GetName(), md.GetStepMetric(), md.GetStepSync(), md.GetSummary()},
		[]any{"val/*", "epoch", true, []string{"max"}}, "DefineMetric val/*")

	// 5. Unary Log.
	log := func(data m, step *int64, commit *bool) (*pb.LogResponse, error) {
		r, err := c.Log(ctx, &pb.LogRequest{RunId: runID, Data: vmap(data), Step: step, Commit: commit})
		if err != nil {
			return nil, fmt.Errorf("Log %v: %w", data, err)
		}
		return r, nil
	}
	type logCall struct {
		data     m
		step     *int64
		commit   *bool
		wantStep int64
		what     string
	}
	for _, lc := range []logCall{
		{m{"loss": 2.0, "note": "hello", "flag": true, "count": int64(7)}, nil, nil, 1, "Log 1 step"},
		{m{"partial": 1.0}, nil, ptr(false), 1, "Log 2 (commit=false) step"},
		{m{"bad": nan, "nested": m{"x": 1.5, "y": m{"z": "deep"}}}, nil, ptr(true), 2, "Log 3 (commit) step"},
		{m{"loss": 1.5}, ptr(int64(5)), nil, 5, "Log 4 (step=5) step"},
		{m{"extra": 4.0}, ptr(int64(5)), nil, 5, "Log 5 (same step) step"},
	} {
		r, err := log(lc.data, lc.step, lc.commit)
		if err != nil {
			return err
		}
		eq(r.GetStep(), lc.wantStep, lc.what)
	}
	r6, err := log(m{"loss": 9.0}, ptr(int64(3)), nil)
	if err != nil {
		return err
	}
	eq(r6.GetStep(), int64(5), "Log 6 (smaller step) step")
	eq(dropped(r6.GetDropped()), []any{[]any{int64(0), int64(3), int64(5)}}, "Log 6 dropped")
	for _, d := range r6.GetDropped() {
		check(d.GetReason() != "", "Log 6 dropped row has a reason")
	}
	r7, err := log(m{"none": nil, "big": int64(1) << 40}, ptr(int64(6)), ptr(true))
	if err != nil {
		return err
	}
	eq(r7.GetStep(), int64(7), "Log 7 (step=6, commit) step")
	eq(int64(len(r7.GetDropped())), int64(0), "Log 7 dropped")

	// 6. LogStream.
	k1 := []string{"loss", "epoch"}
	k2 := []string{"val/acc", "loss", "epoch"}
	k3 := []string{"loss", "val/loss"}
	batches := []*pb.LogBatch{
		{RunId: runID, Seq: 1, Keys: k1, Rows: []*pb.Row{
			row(k1, []kv{{"loss", 1.0}}, m{"phase": "train"}, nil, nil),
			row(k1, []kv{{"loss", 0.75}}, nil, nil, nil),
			row(k1, []kv{{"loss", 0.5}, {"epoch", 0.0}}, nil, nil, nil),
		}},
		{RunId: runID, Seq: 2, Keys: k2, Rows: []*pb.Row{
			row(k2, []kv{{"loss", 0.25}, {"epoch", 1.0}, {"val/acc", 0.5}}, nil, nil, nil),
			row(k2, []kv{{"val/acc", 0.625}}, nil, nil, nil),
			row(k2, []kv{{"loss", 0.125}}, m{"deep": m{"a": m{"k": int64(3)}}, "items": []any{"a", int64(1), true}}, nil, nil),
		}},
		{RunId: runID, Seq: 3, Keys: k3, Rows: []*pb.Row{
			row(k3, []kv{{"loss", nan}, {"val/loss", 0.375}}, nil, nil, nil),
			row(k3, []kv{{"loss", 0.0625}}, nil, ptr(int64(20)), nil),
			row(k3, []kv{{"loss", 0.03125}}, nil, nil, ptr(true)),
			row(k3, []kv{{"loss", 8.0}}, nil, ptr(int64(15)), nil),
		}},
	}
	stream, err := c.LogStream(ctx)
	if err != nil {
		return fmt.Errorf("LogStream: %w", err)
	}
	for _, b := range append(batches, batches[1]) {
		if err := stream.Send(b); err != nil {
			return fmt.Errorf("LogStream send seq %d: %w", b.GetSeq(), err)
		}
	}
	_ = stream.CloseSend()
	var acks []*pb.LogAck
	for {
		a, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("LogStream recv: %w", err)
		}
		acks = append(acks, a)
	}
	var ackIDs, ackSteps, ackDropped []any
	for i, a := range acks {
		ackIDs = append(ackIDs, []any{a.GetRunId(), int64(a.GetSeq()), a.GetDuplicate()})
		if i < 3 {
			ackSteps = append(ackSteps, a.GetStep())
			ackDropped = append(ackDropped, dropped(a.GetDropped()))
		}
	}
	eq(ackIDs, []any{
		[]any{runID, int64(1), false}, []any{runID, int64(2), false},
		[]any{runID, int64(3), false}, []any{runID, int64(2), true},
	}, "LogStream acks")
	eq(ackSteps, []any{int64(10), int64(13), int64(21)}, "LogStream ack steps")
	eq(ackDropped, []any{[]any{}, []any{}, []any{[]any{int64(3), int64(15), int64(21)}}}, "LogStream dropped rows")

	// 7. UpdateConfig.
	uc, err := c.UpdateConfig(ctx, &pb.UpdateConfigRequest{
		RunId: runID, Config: vmap(m{"epochs": int64(5), "extra": m{"k": "v"}}), Remove: []string{"arch"},
	})
	if err != nil {
		return fmt.Errorf("UpdateConfig: %w", err)
	}
	wantCfg := config()
	delete(wantCfg, "arch")
	wantCfg["epochs"] = int64(5)
	wantCfg["extra"] = m{"k": "v"}
	eq(gomap(uc.GetConfig()), wantCfg, "UpdateConfig config")

	// 8. UpdateSummary.
	us, err := c.UpdateSummary(ctx, &pb.UpdateSummaryRequest{
		RunId: runID, Summary: vmap(m{"best_acc": 0.875, "note": "summary-note"}), Remove: []string{"count"},
	})
	if err != nil {
		return fmt.Errorf("UpdateSummary: %w", err)
	}
	summ := gomap(us.GetSummary())
	eq(summ["best_acc"], 0.875, "UpdateSummary best_acc")
	eq(summ["note"], "summary-note", "UpdateSummary note (explicit wins)")
	_, hasCount := summ["count"]
	check(!hasCount, "UpdateSummary removed count: %v", summ)
	eq(summ["loss"], m{"min": 0.03125, "max": 2.0}, "UpdateSummary loss min/max")
	eq(summ["val/acc"], m{"max": 0.625}, "UpdateSummary val/acc max (glob)")
	eq(summ["val/loss"], m{"max": 0.375}, "UpdateSummary val/loss max (glob)")

	// 9. Alert twice.
	alert := func(text string) (*pb.AlertResponse, error) {
		r, err := c.Alert(ctx, &pb.AlertRequest{RunId: runID, Title: "conformance alert", Text: text,
			Level: "WARN", WaitDuration: ptr(600.0)})
		if err != nil {
			return nil, fmt.Errorf("Alert %s: %w", text, err)
		}
		return r, nil
	}
	a1, err := alert("first")
	if err != nil {
		return err
	}
	eq([]any{a1.GetSent(), a1.GetThrottled()}, []any{true, false}, "Alert 1 (sent, throttled)")
	a2, err := alert("second")
	if err != nil {
		return err
	}
	eq([]any{a2.GetSent(), a2.GetThrottled()}, []any{false, true}, "Alert 2 (sent, throttled)")
	now := float64(time.Now().UnixNano()) / 1e9
	check(a2.GetThrottledUntil() > now+500, "Alert 2 throttled_until %v is ~600 s ahead", a2.GetThrottledUntil())

	// 10. SaveFiles.
	if err := os.MkdirAll(filepath.Join(workdir, "out"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(workdir, "out", "result.txt"), []byte("conformance result\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(workdir, "out", "skip.bin"), []byte("not matched\n"), 0o644); err != nil {
		return err
	}
	sf, err := c.SaveFiles(ctx, &pb.SaveFilesRequest{RunId: runID, Glob: "out/*.txt", Policy: "now"})
	if err != nil {
		return fmt.Errorf("SaveFiles: %w", err)
	}
	eq(sf.GetSaved(), []string{"out/result.txt"}, "SaveFiles saved")

	// 11. Finish.
	fin, err := c.Finish(ctx, &pb.FinishRequest{RunId: runID, ExitCode: ptr(int32(0))})
	if err != nil {
		return fmt.Errorf("Finish: %w", err)
	}
	eq(fin.GetRun().GetState().String(), "RUN_STATE_FINISHED", "Finish run.state")
	eq(exitCode(fin.GetRun()), any(int32(0)), "Finish run.exit_code")
	eq(fin.GetRun().GetStep(), int64(21), "Finish run.step")
	eq(fin.GetRun().GetHistoryRows(), int64(12), "Finish run.history_rows")
	fsum := gomap(fin.GetSummary())
	eq(fsum["_step"], int64(20), "Finish summary _step")
	eq(fsum["best_acc"], 0.875, "Finish summary best_acc")

	// 12. GetRun.
	got, err := c.GetRun(ctx, &pb.GetRunRequest{RunId: runID})
	if err != nil {
		return fmt.Errorf("GetRun: %w", err)
	}
	run := got.GetRun()
	eq(run.GetState().String(), "RUN_STATE_FINISHED", "GetRun run.state")
	eq(exitCode(run), any(int32(0)), "GetRun run.exit_code")
	eq([]any{run.GetId(), run.GetProject(), run.GetName()}, []any{runID, project, "conformance-run"}, "GetRun identity")
	eq(run.GetTags(), []string{"conformance"}, "GetRun tags")
	check(run.GetStartTime() > 0 && run.GetStartTime() <= run.GetEndTime(), "GetRun start %v <= end %v", run.GetStartTime(), run.GetEndTime())
	eq([]any{run.GetStep(), run.GetHistoryRows()}, []any{int64(21), int64(12)}, "GetRun (step, history_rows)")
	eq(gomap(got.GetConfig()), wantCfg, "GetRun config")
	eq(got.GetFiles(), []string{"out/result.txt"}, "GetRun files")
	var metricNames []string
	for _, md := range got.GetMetrics() {
		metricNames = append(metricNames, md.GetName())
	}
	sort.Strings(metricNames)
	eq(metricNames, []string{"epoch", "loss", "val/*"}, "GetRun metrics")
	eq(gomap(got.GetSummary()), fsum, "GetRun summary equals Finish summary")

	// 13. ScanHistory.
	scan := func(keys []string) ([]*pb.HistoryRow, error) {
		s, err := c.ScanHistory(ctx, &pb.ScanHistoryRequest{RunId: runID, Keys: keys})
		if err != nil {
			return nil, fmt.Errorf("ScanHistory: %w", err)
		}
		var rows []*pb.HistoryRow
		for {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return rows, nil
			}
			if err != nil {
				return nil, fmt.Errorf("ScanHistory recv: %w", err)
			}
			rows = append(rows, r.GetRows()...)
		}
	}
	rows, err := scan(nil)
	if err != nil {
		return err
	}
	var steps []any
	byStep := map[int64]m{}
	for _, r := range rows {
		steps = append(steps, r.GetStep())
		byStep[r.GetStep()] = gomap(r.GetValues())
	}
	eq(steps, []any{int64(0), int64(1), int64(5), int64(6), int64(7), int64(8), int64(9), int64(10), int64(11), int64(12), int64(13), int64(20)}, "ScanHistory steps")
	if len(rows) == 12 {
		eq(byStep[0]["count"], int64(7), "row 0 count (int)")
		eq(byStep[0]["flag"], true, "row 0 flag (bool)")
		eq(byStep[0]["note"], "hello", "row 0 note (string)")
		eq(byStep[1]["bad"], nan, "row 1 bad (NaN)")
		eq(byStep[1]["nested"], m{"x": 1.5, "y": m{"z": "deep"}}, "row 1 nested")
		eq(byStep[1]["partial"], 1.0, "row 1 partial (commit=false joined)")
		eq([]any{byStep[5]["loss"], byStep[5]["extra"]}, []any{1.5, 4.0}, "row 5 merged")
		none, hasNone := byStep[6]["none"]
		eq([]any{hasNone, none, byStep[6]["big"]}, []any{true, nil, int64(1) << 40}, "row 6 null and int64")
		eq(byStep[11]["epoch"], 1.0, "row 11 epoch (step_sync)")
		eq(byStep[12]["items"], []any{"a", int64(1), true}, "row 12 list")
		eq(byStep[13]["loss"], nan, "row 13 loss (NaN)")
		eq(byStep[20]["loss"], 0.03125, "row 20 loss (merged into the pending row)")
	}
	only, err := scan([]string{"val/acc"})
	if err != nil {
		return err
	}
	var onlySteps []any
	for _, r := range only {
		onlySteps = append(onlySteps, r.GetStep())
	}
	eq(onlySteps, []any{int64(10), int64(11)}, "ScanHistory keys=[val/acc] steps")
	return nil
}

func dropped(ds []*pb.DroppedRow) []any {
	out := []any{}
	for _, d := range ds {
		out = append(out, []any{int64(d.GetRowIndex()), d.GetStep(), d.GetCurrentStep()})
	}
	return out
}

func exitCode(r *pb.RunInfo) any {
	if r.ExitCode == nil {
		return "absent"
	}
	return r.GetExitCode()
}

func ptr[T any](v T) *T { return &v }

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: conformance ADDRESS RUN_ID WORKDIR")
		os.Exit(2)
	}
	address, id, dir := os.Args[1], os.Args[2], os.Args[3]
	runID, workdir = id, dir
	// grpc-go takes unix:///path as is, and host:port for TCP.
	target := strings.TrimPrefix(address, "tcp://")
	fmt.Printf("go grpc-go %s: %s at %s\n", grpc.Version, runID, target)
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Printf("FAIL %s: client: %v\n", runID, err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := scenario(ctx, conn); err != nil {
		msg := err.Error()
		if s, ok := status.FromError(errors.Unwrap(err)); ok {
			msg = fmt.Sprintf("%v (%s: %s)", err, s.Code(), s.Message())
		}
		failures = append(failures, "RPC failed: "+msg)
		fmt.Printf("  RPC FAILED: %s\n", msg)
	}
	if len(failures) > 0 {
		fmt.Printf("FAIL %s: %d mismatch(es)\n", runID, len(failures))
		os.Exit(1)
	}
	fmt.Printf("PASS %s\n", runID)
}
