package runcore_test

// The shared test vectors of tests/vectors/ (format: tests/vectors/README.md).
//
//   - The step/commit cases run against the client's own step mirror (Run.advance,
//     what Step reports): steps, step, dropped.
//   - Every case runs against the real sidecar through the client (Log,
//     DefineMetric, SetSummary, Finish): rows (ScanHistory), dropped rows
//     (Options.OnDropped), the step (the client's and the sidecar's), the summary and
//     the metric definitions. The client computes neither summaries nor definitions
//     itself: those are the sidecar's.
//   - status_contract.json runs against the client's classify.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	runcore "github.com/runcore/runcore/clients/go"
	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

var vectorsDir = filepath.Join("..", "..", "tests", "vectors")

// knownSidecarDefects are cases the sidecar gets wrong today, and why. Such a case
// is skipped while it fails and fails once it passes, until it is removed here
// (clients/python/tests/test_vectors.py has the same list).
var knownSidecarDefects = map[string]string{}

type vectorCall struct {
	Log           map[string]any `json:"log"`
	Step          *int64         `json:"step"`
	Commit        *bool          `json:"commit"`
	DefineMetric  map[string]any `json:"define_metric"`
	UpdateSummary map[string]any `json:"update_summary"`
	Remove        []string       `json:"remove"`
	Finish        map[string]any `json:"finish"`
	Error         string         `json:"error"`
	op            string
}

type vectorDropped struct {
	Call        int   `json:"call"`
	Step        int64 `json:"step"`
	CurrentStep int64 `json:"current_step"`
}

type vectorCase struct {
	Name   string       `json:"name"`
	About  string       `json:"about"`
	Calls  []vectorCall `json:"calls"`
	Expect struct {
		Steps   []int64          `json:"steps"`
		Step    *int64           `json:"step"`
		Rows    []any            `json:"rows"`
		Dropped []vectorDropped  `json:"dropped"`
		Summary map[string]any   `json:"summary"`
		Metrics []map[string]any `json:"metrics"`
	} `json:"expect"`
}

// decodeStrict decodes one JSON document, numbers as json.Number (so 1 and 1.0
// stay an int and a double), refusing keys the format does not have.
func decodeStrict(t testing.TB, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatal(err)
	}
}

func loadCases(t testing.TB) []vectorCase {
	t.Helper()
	var all []vectorCase
	seen := map[string]bool{}
	for _, name := range []string{"log_steps.json", "summary.json", "define_metric.json"} {
		data, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		var file struct {
			Format string       `json:"format"`
			About  string       `json:"about"`
			Cases  []vectorCase `json:"cases"`
		}
		decodeStrict(t, data, &file)
		if file.Format != "runcore.vectors.semantics/1" {
			t.Fatalf("%s: unknown format %q", name, file.Format)
		}
		for i := range file.Cases {
			c := &file.Cases[i]
			if seen[c.Name] || c.Expect.Step == nil || c.Expect.Rows == nil || c.Expect.Dropped == nil {
				t.Fatalf("%s: case %q: duplicate name, or step/rows/dropped missing", name, c.Name)
			}
			seen[c.Name] = true
			for j := range c.Calls {
				call := &c.Calls[j]
				var ops []string
				if call.Log != nil {
					ops = append(ops, "log")
				}
				if call.DefineMetric != nil {
					ops = append(ops, "define_metric")
				}
				if call.UpdateSummary != nil {
					ops = append(ops, "update_summary")
				}
				if call.Finish != nil {
					ops = append(ops, "finish")
				}
				if len(ops) != 1 {
					t.Fatalf("%s: case %q call %d: operations %v, want exactly one", name, c.Name, j, ops)
				}
				call.op = ops[0]
			}
			all = append(all, *c)
		}
	}
	return all
}

// vectorValue is a vector VALUE as the Go value to log: an int64 for a number
// without '.', 'e', 'E', else a float64; {"$double": ...} for NaN and infinities.
func vectorValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			f, _ := x.Float64()
			return f
		}
		i, _ := x.Int64()
		return i
	case map[string]any:
		if d, ok := x["$double"].(string); ok && len(x) == 1 {
			switch d {
			case "NaN":
				return math.NaN()
			case "Infinity":
				return math.Inf(1)
			case "-Infinity":
				return math.Inf(-1)
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = vectorValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = vectorValue(e)
		}
		return out
	}
	return v
}

func vectorMap(m map[string]any) map[string]any {
	return vectorValue(m).(map[string]any)
}

// sameValue compares as README "Comparison" says: numbers by value (NaN equals
// NaN), objects by key set, arrays in order.
func sameValue(want, got any, where string) error {
	switch w := want.(type) {
	case float64, int64:
		var a, b float64
		switch x := w.(type) {
		case float64:
			a = x
		case int64:
			a = float64(x)
		}
		switch x := got.(type) {
		case float64:
			b = x
		case int64:
			b = float64(x)
		default:
			return fmt.Errorf("%s: %#v, want %v", where, got, want)
		}
		if (math.IsNaN(a) && math.IsNaN(b)) || a == b || math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b)) {
			return nil
		}
		return fmt.Errorf("%s: %v, want %v", where, got, want)
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %#v, want a map", where, got)
		}
		if !reflect.DeepEqual(sortedKeys(w), sortedKeys(g)) {
			return fmt.Errorf("%s: keys %v, want %v", where, sortedKeys(g), sortedKeys(w))
		}
		for k := range w {
			if err := sameValue(w[k], g[k], where+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: %#v, want %v", where, got, want)
		}
		for i := range w {
			if err := sameValue(w[i], g[i], fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if want != got {
		return fmt.Errorf("%s: %#v, want %#v", where, got, want)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestVectorsStepMirror(t *testing.T) {
	t.Parallel()
	for _, c := range loadCases(t) {
		m := &runcore.StepMirror{}
		var steps []int64
		var dropped []vectorDropped
		for i, call := range c.Calls {
			switch call.op {
			case "log":
				current := m.Step()
				if !m.Log(len(call.Log) > 0, call.Step, call.Commit) {
					dropped = append(dropped, vectorDropped{Call: i, Step: *call.Step, CurrentStep: current})
				}
			case "finish":
				m.Finish()
			}
			steps = append(steps, m.Step())
		}
		if c.Expect.Steps != nil && !reflect.DeepEqual(steps, c.Expect.Steps) {
			t.Errorf("%s: steps %v, want %v", c.Name, steps, c.Expect.Steps)
		}
		if m.Step() != *c.Expect.Step {
			t.Errorf("%s: step %d, want %d", c.Name, m.Step(), *c.Expect.Step)
		}
		if len(dropped) != 0 || len(c.Expect.Dropped) != 0 {
			if !reflect.DeepEqual(dropped, c.Expect.Dropped) {
				t.Errorf("%s: dropped %v, want %v", c.Name, dropped, c.Expect.Dropped)
			}
		}
	}
}

func TestVectorsSidecar(t *testing.T) {
	t.Parallel()
	codeByName := contractCodes(t)
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			err := runVectorCase(t, c, codeByName)
			why, known := knownSidecarDefects[c.Name]
			switch {
			case known && err == nil:
				t.Errorf("the case passes now: remove it from knownSidecarDefects (%s)", why)
			case known:
				t.Skipf("known sidecar defect: %s: %v", why, err)
			case err != nil:
				t.Error(err)
			}
		})
	}
}

// runVectorCase runs one case on the shared sidecar; it returns the first
// difference from what the case expects.
func runVectorCase(t *testing.T, c vectorCase, codeByName map[string]codes.Code) error {
	ctx := testCtx(t)
	var mu sync.Mutex
	var drops []runcore.DroppedRow
	run, err := runcore.Init(ctx, runcore.Options{Address: shared.addr, Project: "go-vectors", ID: runID(c.Name),
		OnDropped: func(d runcore.DroppedRow) {
			mu.Lock()
			drops = append(drops, d)
			mu.Unlock()
		}})
	if err != nil {
		return err
	}
	defer func() { _, _ = run.Finish(context.Background(), 0) }()
	var steps []int64
	var dropped []vectorDropped
	for i, call := range c.Calls {
		var err error
		switch call.op {
		case "log":
			mu.Lock()
			before := len(drops)
			mu.Unlock()
			var opts []runcore.LogOption
			if call.Step != nil {
				opts = append(opts, runcore.WithStep(*call.Step))
			}
			if call.Commit != nil {
				opts = append(opts, runcore.WithCommit(*call.Commit))
			}
			if err = run.Log(vectorMap(call.Log), opts...); err == nil {
				err = run.Flush(ctx) // a dropped row is reported by its ack
			}
			mu.Lock()
			for _, d := range drops[before:] {
				dropped = append(dropped, vectorDropped{Call: i, Step: d.Step, CurrentStep: d.CurrentStep})
			}
			mu.Unlock()
		case "define_metric":
			_, err = run.DefineMetric(ctx, call.DefineMetric["name"].(string), metricOptions(call.DefineMetric)...)
		case "update_summary":
			_, err = run.SetSummary(ctx, vectorMap(call.UpdateSummary), call.Remove...)
		case "finish":
			code := 0
			if n, ok := call.Finish["exit_code"].(json.Number); ok {
				c, _ := n.Int64()
				code = int(c)
			}
			_, err = run.Finish(ctx, code)
		}
		if call.Error != "" {
			want, ok := codeByName[call.Error]
			if !ok || runcore.Code(err) != want {
				return fmt.Errorf("call %d: error %v, want %s", i, err, call.Error)
			}
		} else if err != nil {
			return fmt.Errorf("call %d (%s): %v", i, call.op, err)
		}
		steps = append(steps, run.Step())
	}
	e := c.Expect
	if e.Steps != nil && !reflect.DeepEqual(steps, e.Steps) {
		return fmt.Errorf("steps %v, want %v", steps, e.Steps)
	}
	got := getRun(t, shared.client, run.ID())
	if run.Step() != *e.Step || got.GetRun().GetStep() != *e.Step {
		return fmt.Errorf("step: the client's %d, the sidecar's %d, want %d", run.Step(), got.GetRun().GetStep(), *e.Step)
	}
	rows, err := vectorHistory(ctx, run.ID())
	if err != nil {
		return err
	}
	if err := sameValue(vectorValue(e.Rows), rows, "rows"); err != nil {
		return err
	}
	if (len(dropped) != 0 || len(e.Dropped) != 0) && !reflect.DeepEqual(dropped, e.Dropped) {
		return fmt.Errorf("dropped %v, want %v", dropped, e.Dropped)
	}
	if e.Summary != nil {
		summary, err := run.Summary(ctx)
		if err != nil {
			return err
		}
		delete(summary, "_runtime")
		delete(summary, "_timestamp")
		if err := sameValue(vectorMap(e.Summary), summary, "summary"); err != nil {
			return err
		}
	}
	if e.Metrics != nil {
		var metrics []any
		for _, m := range got.GetMetrics() {
			summary := []any{}
			for _, s := range m.GetSummary() {
				summary = append(summary, s)
			}
			metrics = append(metrics, map[string]any{"name": m.GetName(), "step_metric": m.GetStepMetric(),
				"step_sync": m.GetStepSync(), "hidden": m.GetHidden(), "summary": summary, "goal": m.GetGoal()})
		}
		want := []any{}
		for _, m := range e.Metrics {
			want = append(want, vectorMap(m))
		}
		if metrics == nil {
			metrics = []any{}
		}
		if err := sameValue(want, metrics, "metrics"); err != nil {
			return err
		}
	}
	return nil
}

func metricOptions(m map[string]any) []runcore.MetricOption {
	var opts []runcore.MetricOption
	if v, ok := m["step_metric"].(string); ok {
		opts = append(opts, runcore.WithStepMetric(v))
	}
	if v, ok := m["step_sync"].(bool); ok {
		opts = append(opts, runcore.WithStepSync(v))
	}
	if v, ok := m["hidden"].(bool); ok {
		opts = append(opts, runcore.WithHidden(v))
	}
	if v, ok := m["summary"].(string); ok {
		opts = append(opts, runcore.WithSummary(v))
	}
	if v, ok := m["goal"].(string); ok {
		opts = append(opts, runcore.WithGoal(v))
	}
	if v, ok := m["overwrite"].(bool); ok {
		opts = append(opts, runcore.WithOverwrite(v))
	}
	return opts
}

// vectorHistory is a run's committed rows as the vectors write them.
func vectorHistory(ctx context.Context, runID string) ([]any, error) {
	stream, err := shared.client.ScanHistory(ctx, &pb.ScanHistoryRequest{RunId: runID})
	if err != nil {
		return nil, err
	}
	rows := []any{}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		for _, r := range resp.GetRows() {
			values := map[string]any{}
			for k, v := range r.GetValues() {
				if k != "_step" && k != "_runtime" && k != "_timestamp" {
					values[k] = runcore.FromValue(v)
				}
			}
			rows = append(rows, map[string]any{"step": r.GetStep(), "values": values})
		}
	}
}

type contractFile struct {
	Format  string            `json:"format"`
	About   string            `json:"about"`
	Kinds   map[string]string `json:"kinds"`
	Actions map[string]string `json:"actions"`
	Limits  struct {
		RetryLimitedAttempts    int `json:"retry_limited_attempts"`
		ReconnectTimeoutSeconds int `json:"reconnect_timeout_seconds"`
	} `json:"limits"`
	Codes []struct {
		Code    string `json:"code"`
		Number  int    `json:"number"`
		Init    string `json:"init"`
		Unary   string `json:"unary"`
		Stream  string `json:"stream"`
		API     string `json:"api"`
		Sidecar string `json:"sidecar"`
	} `json:"codes"`
}

func loadContract(t testing.TB) contractFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir, "status_contract.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f contractFile
	decodeStrict(t, data, &f)
	if f.Format != "runcore.vectors.status_contract/1" {
		t.Fatalf("status_contract.json: unknown format %q", f.Format)
	}
	return f
}

// contractCodes maps the contract's code names (INVALID_ARGUMENT) to codes.
func contractCodes(t testing.TB) map[string]codes.Code {
	out := map[string]codes.Code{}
	for _, row := range loadContract(t).Codes {
		out[row.Code] = codes.Code(row.Number)
	}
	return out
}

func TestStatusContract(t *testing.T) {
	t.Parallel()
	f := loadContract(t)
	if len(f.Codes) != 17 {
		t.Fatalf("%d codes, want one row for each of the 17", len(f.Codes))
	}
	for i, row := range f.Codes {
		code := codes.Code(row.Number)
		name := strings.ReplaceAll(strings.ReplaceAll(row.Code, "_", ""), "CANCELLED", "CANCELED") // Go's spelling
		if row.Number != i || !strings.EqualFold(name, code.String()) {
			t.Errorf("row %d: %s = %d does not name %s", i, row.Code, row.Number, code)
		}
		for kind, want := range map[string]string{"init": row.Init, "unary": row.Unary, "stream": row.Stream, "api": row.API} {
			if got := runcore.Classify(code, kind); got != want {
				t.Errorf("%s on a %s call: %s, want %s", row.Code, kind, got, want)
			}
		}
	}
	var actions []string
	for a := range f.Actions {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	mine := append([]string(nil), runcore.Actions...)
	sort.Strings(mine)
	if !reflect.DeepEqual(actions, mine) {
		t.Errorf("actions %v, the client's %v", actions, mine)
	}
	if f.Limits.RetryLimitedAttempts != runcore.RetryLimitedAttempts ||
		float64(f.Limits.ReconnectTimeoutSeconds) != runcore.DefaultReconnectTimeout.Seconds() {
		t.Errorf("limits %+v, the client's %d attempts and %s", f.Limits, runcore.RetryLimitedAttempts, runcore.DefaultReconnectTimeout)
	}
}

// runID is a fresh run id for a case: its name (cut to fit the 64-character limit)
// and a random suffix.
func runID(name string) string {
	if len(name) > 50 {
		name = name[:50]
	}
	return name + "-" + randomSuffix()
}
