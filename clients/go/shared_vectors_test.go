package runcore_test

// tests/vectors/shared_steps.json (several writers of one shared run) against the
// real sidecar through plain stubs, every field of every case (format:
// tests/vectors/README.md).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	runcore "github.com/runcore/runcore/clients/go"
	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

type sharedCall struct {
	Writer string         `json:"writer"`
	Join   map[string]any `json:"join"`
	Log    map[string]any `json:"log"`
	Step   *int64         `json:"step"`
	Commit *bool          `json:"commit"`
	Finish map[string]any `json:"finish"`
	Error  string         `json:"error"`
}

type sharedCase struct {
	Name    string       `json:"name"`
	About   string       `json:"about"`
	Writers []string     `json:"writers"`
	Calls   []sharedCall `json:"calls"`
	Expect  struct {
		Steps        []int64           `json:"steps"`
		Step         int64             `json:"step"`
		WriterSteps  map[string]int64  `json:"writer_steps"`
		WriterStates map[string]string `json:"writer_states"`
		State        string            `json:"state"`
		Rows         []any             `json:"rows"`
		Dropped      []vectorDropped   `json:"dropped"`
	} `json:"expect"`
}

// writerInit joins a shared case's run: the first writer is primary, the others
// may not end the run.
func writerInit(runID, writer string, primary bool) *pb.InitRequest {
	return &pb.InitRequest{
		Id: runID, Project: "vectors", Resume: pb.Resume_RESUME_ALLOW, WriterId: writer,
		Writer: &pb.WriterSettings{Shared: true, Label: writer, Primary: proto.Bool(primary), UpdateFinishState: proto.Bool(primary)},
	}
}

func TestVectorsShared(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(vectorsDir, "shared_steps.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Format string       `json:"format"`
		About  string       `json:"about"`
		Cases  []sharedCase `json:"cases"`
	}
	decodeStrict(t, data, &file)
	if file.Format != "runcore.vectors.shared/1" {
		t.Fatalf("shared_steps.json: unknown format %q", file.Format)
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if err := runSharedCase(testCtx(t), c); err != nil {
				t.Error(err)
			}
		})
	}
}

func runSharedCase(ctx context.Context, c sharedCase) error {
	client := shared.client
	id := runID(c.Name)
	for i, w := range c.Writers {
		if _, err := client.Init(ctx, writerInit(id, w, i == 0)); err != nil {
			return err
		}
	}
	seqs := map[string]uint64{}
	var steps []int64
	dropped := []vectorDropped{}
	for i, call := range c.Calls {
		err := sharedVectorCall(ctx, id, i, call, seqs, &dropped)
		got := ""
		if err != nil {
			got = strings.ToUpper(strings.ReplaceAll(toSnake(status.Code(err).String()), " ", "_"))
		}
		if got != call.Error {
			return fmt.Errorf("call %d: error %q (%v), want %q", i, got, err, call.Error)
		}
		run, err := client.GetRun(ctx, &pb.GetRunRequest{RunId: id})
		if err != nil {
			return err
		}
		steps = append(steps, run.GetRun().GetStep())
	}
	return compareShared(ctx, id, c, steps, dropped)
}

func sharedVectorCall(ctx context.Context, id string, i int, call sharedCall, seqs map[string]uint64, dropped *[]vectorDropped) error {
	client := shared.client
	switch {
	case call.Join != nil:
		_, err := client.Init(ctx, writerInit(id, call.Writer, false))
		return err
	case call.Log != nil:
		seqs[call.Writer]++
		data := map[string]*pb.Value{}
		for k, v := range vectorMap(call.Log) {
			pv, err := runcore.ToValue(v)
			if err != nil {
				return err
			}
			data[k] = pv
		}
		resp, err := client.Log(ctx, &pb.LogRequest{
			RunId: id, WriterId: call.Writer, Seq: seqs[call.Writer], Data: data, Step: call.Step, Commit: call.Commit,
		})
		for _, d := range resp.GetDropped() {
			*dropped = append(*dropped, vectorDropped{Call: i, Step: d.GetStep(), CurrentStep: d.GetCurrentStep()})
		}
		return err
	case call.Finish != nil:
		_, err := client.Finish(ctx, &pb.FinishRequest{RunId: id, WriterId: call.Writer})
		return err
	}
	return fmt.Errorf("call %d is none of join, log, finish", i)
}

func compareShared(ctx context.Context, id string, c sharedCase, steps []int64, dropped []vectorDropped) error {
	got, err := shared.client.GetRun(ctx, &pb.GetRunRequest{RunId: id})
	if err != nil {
		return err
	}
	e := c.Expect
	if e.Steps != nil && fmt.Sprint(steps) != fmt.Sprint(e.Steps) {
		return fmt.Errorf("steps %v, want %v", steps, e.Steps)
	}
	if got.GetRun().GetStep() != e.Step {
		return fmt.Errorf("step %d, want %d", got.GetRun().GetStep(), e.Step)
	}
	if fmt.Sprint(dropped) != fmt.Sprint(e.Dropped) {
		return fmt.Errorf("dropped %v, want %v", dropped, e.Dropped)
	}
	rows, err := vectorHistory(ctx, id)
	if err != nil {
		return err
	}
	if err := sameValue(vectorValue(e.Rows), rows, "rows"); err != nil {
		return err
	}
	stateName := func(s pb.RunState) string {
		return strings.ToLower(strings.TrimPrefix(s.String(), "RUN_STATE_"))
	}
	if e.State != "" && stateName(got.GetRun().GetState()) != e.State {
		return fmt.Errorf("state %s, want %s", got.GetRun().GetState(), e.State)
	}
	writers := map[string]*pb.WriterInfo{}
	for _, w := range got.GetWriters() {
		writers[w.GetId()] = w
	}
	for w, step := range e.WriterSteps {
		if writers[w].GetStep() != step {
			return fmt.Errorf("writer %s step %d, want %d", w, writers[w].GetStep(), step)
		}
	}
	for w, st := range e.WriterStates {
		if stateName(writers[w].GetState()) != st {
			return fmt.Errorf("writer %s state %s, want %s", w, writers[w].GetState(), st)
		}
	}
	return nil
}

// toSnake turns a gRPC code's Go name (FailedPrecondition) into its proto name's
// words (Failed Precondition).
func toSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
