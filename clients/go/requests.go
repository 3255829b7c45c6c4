// The run's requests besides logging: DefineMetric, Alert, Save, config and
// summary changes, MarkPreempting, each with its options.

package runcore

import (
	"context"
	"maps"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// MetricOption modifies a DefineMetric call.
type MetricOption func(*pb.DefineMetricRequest)

// WithStepMetric sets the metric's x axis: another logged key (e.g. "epoch").
func WithStepMetric(name string) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.StepMetric = name }
}

// WithStepSync fills the step metric's last value into rows that lack it (the
// default is true with a step metric).
func WithStepSync(sync bool) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.StepSync = &sync }
}

// WithHidden hides the metric from charts.
func WithHidden(hidden bool) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.Hidden = &hidden }
}

// WithSummary selects the summary aggregations: any of "min", "max", "mean",
// "first", "last", "best" (needs WithGoal), or "none".
func WithSummary(aggregations ...string) MetricOption {
	return func(r *pb.DefineMetricRequest) {
		for i, a := range aggregations {
			if i > 0 {
				r.Summary += ","
			}
			r.Summary += a
		}
	}
}

// Goals for WithGoal.
const (
	Minimize = "minimize"
	Maximize = "maximize"
)

// WithGoal sets the goal of the "best" summary: Minimize or Maximize.
func WithGoal(goal string) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.Goal = goal }
}

// WithOverwrite(false) merges with an earlier definition of the same name instead
// of replacing it.
func WithOverwrite(overwrite bool) MetricOption {
	return func(r *pb.DefineMetricRequest) { r.Overwrite = &overwrite }
}

// DefineMetric is W&B's run.define_metric: name is a key, or a prefix ending in '*'
// ("val/*"). It returns the definition as the sidecar now holds it.
func (r *Run) DefineMetric(ctx context.Context, name string, opts ...MetricOption) (MetricDefinition, error) {
	req := &pb.DefineMetricRequest{RunId: r.id, Name: name}
	for _, opt := range opts {
		opt(req)
	}
	var resp *pb.DefineMetricResponse
	err := r.call(ctx, "DefineMetric", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.DefineMetric(ctx, req)
		return err
	})
	if err != nil {
		return MetricDefinition{}, err
	}
	m := resp.GetMetric()
	return MetricDefinition{
		Name:       m.GetName(),
		StepMetric: m.GetStepMetric(),
		StepSync:   m.GetStepSync(),
		Hidden:     m.GetHidden(),
		Summary:    m.GetSummary(),
		Goal:       m.GetGoal(),
	}, nil
}

// AlertLevel is an alert's level.
type AlertLevel string

// Alert levels.
const (
	AlertInfo  AlertLevel = "INFO"
	AlertWarn  AlertLevel = "WARN"
	AlertError AlertLevel = "ERROR"
)

// AlertOption modifies an Alert call.
type AlertOption func(*pb.AlertRequest)

// WithLevel sets the alert's level (AlertInfo when not given).
func WithLevel(level AlertLevel) AlertOption {
	return func(r *pb.AlertRequest) { r.Level = string(level) }
}

// WithWaitDuration sets how long alerts with the same title are throttled after
// this one is sent (60 s when not given).
func WithWaitDuration(d time.Duration) AlertOption {
	return func(r *pb.AlertRequest) { r.WaitDuration = proto.Float64(d.Seconds()) }
}

// Alert is W&B's run.alert: title is 1..64 characters. An alert whose title was
// sent less than its wait duration ago is throttled, and the result says so.
func (r *Run) Alert(ctx context.Context, title, text string, opts ...AlertOption) (AlertResult, error) {
	req := &pb.AlertRequest{RunId: r.id, Title: title, Text: text}
	for _, opt := range opts {
		opt(req)
	}
	var resp *pb.AlertResponse
	err := r.call(ctx, "Alert", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.Alert(ctx, req)
		return err
	})
	if err != nil {
		return AlertResult{}, err
	}
	return AlertResult{Sent: resp.GetSent(), Throttled: resp.GetThrottled(), ThrottledUntil: unixTime(resp.GetThrottledUntil())}, nil
}

// SavePolicy says when a saved file is copied into the run.
type SavePolicy string

// Save policies.
const (
	// SaveLive copies now, again whenever the file changes (debounced), and at the end.
	SaveLive SavePolicy = "live"
	// SaveNow copies once, now.
	SaveNow SavePolicy = "now"
	// SaveEnd copies when the run finishes.
	SaveEnd SavePolicy = "end"
)

// SaveOption modifies a Save call.
type SaveOption func(*pb.SaveFilesRequest)

// WithBasePath keeps the path below this prefix of the glob as the layout under the
// run's files/ (W&B's base_path).
func WithBasePath(base string) SaveOption {
	return func(r *pb.SaveFilesRequest) { r.BasePath = base }
}

// WithPolicy sets when the files are copied (SaveLive when not given).
func WithPolicy(p SavePolicy) SaveOption {
	return func(r *pb.SaveFilesRequest) { r.Policy = string(p) }
}

// WithWorkingDir resolves a relative glob against dir instead of the run's working
// directory.
func WithWorkingDir(dir string) SaveOption {
	return func(r *pb.SaveFilesRequest) { r.WorkingDir = dir }
}

// Save is W&B's run.save: glob is a path or glob, absolute or relative to the run's
// working directory, expanded now. It returns the saved paths, relative to the
// run's files/ directory (Dir).
func (r *Run) Save(ctx context.Context, glob string, opts ...SaveOption) ([]string, error) {
	req := &pb.SaveFilesRequest{RunId: r.id, Glob: glob}
	for _, opt := range opts {
		opt(req)
	}
	var resp *pb.SaveFilesResponse
	err := r.call(ctx, "Save", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.SaveFiles(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetSaved(), nil
}

// UpdateConfig merges values into the run config at the top level and removes the
// keys in remove; it returns the whole config.
func (r *Run) UpdateConfig(ctx context.Context, values map[string]any, remove ...string) (map[string]any, error) {
	config, err := toValueMap(values, "config")
	if err != nil {
		return nil, invalid("UpdateConfig", r.id, "%v", err)
	}
	var resp *pb.UpdateConfigResponse
	err = r.call(ctx, "UpdateConfig", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.UpdateConfig(ctx, &pb.UpdateConfigRequest{RunId: r.id, Config: config, Remove: remove})
		return err
	})
	if err != nil {
		return nil, err
	}
	whole := fromValueMap(resp.GetConfig())
	r.mu.Lock()
	r.config = whole
	r.mu.Unlock()
	return maps.Clone(whole), nil
}

// SetSummary sets summary values explicitly (an explicit value wins over the
// aggregation of logged values for its key) and removes the keys in remove; it
// returns the whole summary.
func (r *Run) SetSummary(ctx context.Context, values map[string]any, remove ...string) (map[string]any, error) {
	summary, err := toValueMap(values, "summary")
	if err != nil {
		return nil, invalid("SetSummary", r.id, "%v", err)
	}
	var resp *pb.UpdateSummaryResponse
	err = r.call(ctx, "SetSummary", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.UpdateSummary(ctx, &pb.UpdateSummaryRequest{RunId: r.id, Summary: summary, Remove: remove})
		return err
	})
	if err != nil {
		return nil, err
	}
	return fromValueMap(resp.GetSummary()), nil
}

// Summary returns the run's summary now (after the rows logged so far).
func (r *Run) Summary(ctx context.Context) (map[string]any, error) {
	var resp *pb.GetRunResponse
	err := r.call(ctx, "Summary", func(ctx context.Context) (err error) {
		resp, err = r.sc.client.GetRun(ctx, &pb.GetRunRequest{RunId: r.id})
		return err
	})
	if err != nil {
		return nil, err
	}
	return fromValueMap(resp.GetSummary()), nil
}

// MarkPreempting is W&B's run.mark_preempting: the run is about to be preempted.
// If the client then disappears without Finish, the run ends "preempted" instead
// of "crashed".
func (r *Run) MarkPreempting(ctx context.Context) error {
	err := r.call(ctx, "MarkPreempting", func(ctx context.Context) error {
		_, err := r.sc.client.MarkPreempting(ctx, &pb.MarkPreemptingRequest{RunId: r.id})
		return err
	})
	if err == nil {
		r.preempting.Store(true)
	}
	return err
}
