package runcore

// The read API: runs of any client, open or ended, read and edited through a
// Client (W&B's public API). Every call is handled as the client contract says
// for the "api" kind: an unreachable sidecar is reconnected to and the call made
// again (a stream goes on after the last row or byte received), for up to
// Options.ReconnectTimeout; any other failure is returned as an *Error.

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// Client reads and edits the runs of one sidecar.
type Client struct {
	sc   *sidecar
	opts Options
}

// Connect returns a Client for the sidecar at opts.Address, else $RUNCORE_ADDRESS,
// else one this process spawns on opts.DataDir (as Init finds it). Only the
// options about finding the sidecar and ReconnectTimeout matter here.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	opts.withDefaults()
	findCtx, cancel := context.WithTimeout(ctx, opts.InitTimeout)
	defer cancel()
	sc, err := getSidecar(findCtx, &opts)
	if err != nil {
		return nil, err
	}
	return &Client{sc: sc, opts: opts}, nil
}

// Address is the sidecar's address.
func (c *Client) Address() string { return c.sc.address }

// RunDetails is a run with its config, summary, metric definitions, files,
// delivery to backends and latest system-metrics sample.
type RunDetails struct {
	Run      RunInfo
	Config   map[string]any
	Summary  map[string]any
	Metrics  []MetricDefinition
	Files    []string
	Backends []BackendStatus
	// SystemMetrics is the latest sample: "system.<key>", "_runtime", "_timestamp".
	SystemMetrics map[string]float64
}

// HistoryRow is one committed history row: its step and values (with _step,
// _runtime and _timestamp).
type HistoryRow struct {
	Step   int64
	Values map[string]any
}

// ScanOptions narrows ScanHistory.
type ScanOptions struct {
	// Keys: only rows holding every one of them, restricted to them.
	Keys []string
	// MinStep (inclusive) and MaxStep (exclusive) bound the steps when set.
	MinStep, MaxStep *int64
	// PageSize is rows per message from the sidecar (0: 256; at most 10000).
	PageSize int
}

// RunUpdate is an edit of a run: nil and empty fields are left as they are.
type RunUpdate struct {
	Name, Notes, Group, JobType *string
	// Tags replaces the run's tags when not nil (an empty slice clears them).
	Tags *[]string
	// Config is merged into the config at the top level, after ConfigRemove.
	Config       map[string]any
	ConfigRemove []string
	// Summary is set explicitly (it wins over aggregation), after SummaryRemove.
	Summary       map[string]any
	SummaryRemove []string
}

// FileInfo is a file of a run's files directory.
type FileInfo struct {
	// Name is relative to the files directory.
	Name      string
	Size      int64
	UpdatedAt time.Time
}

// retrying runs attempt, reconnecting and trying again while the contract's api
// kind says retry (the sidecar unreachable), for up to ReconnectTimeout without
// progress; progress (set by attempt) restarts that clock.
func (c *Client) retrying(ctx context.Context, op, runID string, attempt func(progress func()) error) error {
	var since time.Time
	delay := 50 * time.Millisecond
	progress := func() { since = time.Time{}; delay = 50 * time.Millisecond }
	for {
		seen := c.sc.gen()
		err := attempt(progress)
		if err == nil {
			return nil
		}
		if classify(status.Code(err), kindAPI) != actRetry || ctx.Err() != nil {
			return newError(op, runID, err)
		}
		if since.IsZero() {
			since = time.Now()
		} else if time.Since(since) > c.opts.ReconnectTimeout {
			return newError(op, runID, err)
		}
		select {
		case <-ctx.Done():
			return newError(op, runID, status.FromContextError(ctx.Err()).Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
		rctx, cancel := context.WithTimeout(ctx, c.opts.ReconnectTimeout)
		rerr := c.sc.recover(rctx, seen)
		cancel()
		if rerr != nil && status.Code(rerr) != codes.Unavailable && status.Code(rerr) != codes.DeadlineExceeded {
			return newError(op, runID, rerr)
		}
	}
}

// ListRuns lists the runs of a project (every project when empty), newest first.
func (c *Client) ListRuns(ctx context.Context, project string) ([]RunInfo, error) {
	var out []RunInfo
	err := c.retrying(ctx, "ListRuns", "", func(func()) error {
		resp, err := c.sc.client.ListRuns(ctx, &pb.ListRunsRequest{Project: project})
		if err != nil {
			return err
		}
		out = out[:0]
		for _, r := range resp.GetRuns() {
			out = append(out, infoOf(r))
		}
		return nil
	})
	return out, err
}

func detailsOf(run *pb.RunInfo, config, summary map[string]*pb.Value) *RunDetails {
	return &RunDetails{Run: infoOf(run), Config: fromValueMap(config), Summary: fromValueMap(summary)}
}

// GetRun reads a run, open or ended.
func (c *Client) GetRun(ctx context.Context, id string) (*RunDetails, error) {
	var d *RunDetails
	err := c.retrying(ctx, "GetRun", id, func(func()) error {
		resp, err := c.sc.client.GetRun(ctx, &pb.GetRunRequest{RunId: id})
		if err != nil {
			return err
		}
		d = detailsOf(resp.GetRun(), resp.GetConfig(), resp.GetSummary())
		d.Files = resp.GetFiles()
		d.Backends = backendsOf(resp.GetBackends())
		d.SystemMetrics = resp.GetSystemMetrics()
		for _, m := range resp.GetMetrics() {
			d.Metrics = append(d.Metrics, MetricDefinition{Name: m.GetName(), StepMetric: m.GetStepMetric(),
				StepSync: m.GetStepSync(), Hidden: m.GetHidden(), Summary: m.GetSummary(), Goal: m.GetGoal()})
		}
		return nil
	})
	return d, err
}

// ScanHistory streams a run's committed history rows in step order:
//
//	for row, err := range client.ScanHistory(ctx, id, runcore.ScanOptions{Keys: []string{"loss"}}) {
//		if err != nil { ... }
//	}
//
// Memory stays constant however long the run; breaking out of the loop ends the
// stream.
func (c *Client) ScanHistory(ctx context.Context, id string, opts ScanOptions) iter.Seq2[HistoryRow, error] {
	return func(yield func(HistoryRow, error) bool) {
		minStep := opts.MinStep
		stopped := false
		err := c.retrying(ctx, "ScanHistory", id, func(progress func()) error {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			req := &pb.ScanHistoryRequest{RunId: id, Keys: opts.Keys, MinStep: minStep, MaxStep: opts.MaxStep,
				PageSize: uint32(max(0, min(opts.PageSize, 10_000)))}
			stream, err := c.sc.client.ScanHistory(sctx, req)
			if err != nil {
				return err
			}
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				progress()
				for _, r := range resp.GetRows() {
					next := r.GetStep() + 1
					minStep = &next
					if !yield(HistoryRow{Step: r.GetStep(), Values: fromValueMap(r.GetValues())}, nil) {
						stopped = true
						return nil
					}
				}
			}
		})
		if err != nil && !stopped {
			yield(HistoryRow{}, err)
		}
	}
}

// UpdateRun edits a run, open or ended: the edit is a record in the run's log
// (kept across restarts) and is forwarded to the sidecar's backend.
func (c *Client) UpdateRun(ctx context.Context, id string, u RunUpdate) (*RunDetails, error) {
	config, err := toValueMap(u.Config, "config")
	if err != nil {
		return nil, invalid("UpdateRun", id, "%v", err)
	}
	summary, err := toValueMap(u.Summary, "summary")
	if err != nil {
		return nil, invalid("UpdateRun", id, "%v", err)
	}
	req := &pb.UpdateRunRequest{RunId: id, Name: u.Name, Notes: u.Notes, Group: u.Group, JobType: u.JobType,
		Config: config, ConfigRemove: u.ConfigRemove, Summary: summary, SummaryRemove: u.SummaryRemove}
	if u.Tags != nil {
		req.Tags = &pb.Tags{Tags: *u.Tags}
	}
	var d *RunDetails
	err = c.retrying(ctx, "UpdateRun", id, func(func()) error {
		resp, err := c.sc.client.UpdateRun(ctx, req)
		if err == nil {
			d = detailsOf(resp.GetRun(), resp.GetConfig(), resp.GetSummary())
		}
		return err
	})
	return d, err
}

// DeleteRun removes an ended run from the sidecar's local store (its backends
// keep their copy); an open run is refused with FAILED_PRECONDITION.
func (c *Client) DeleteRun(ctx context.Context, id string) error {
	return c.retrying(ctx, "DeleteRun", id, func(func()) error {
		_, err := c.sc.client.DeleteRun(ctx, &pb.DeleteRunRequest{RunId: id})
		return err
	})
}

// ListFiles lists the files of a run's files directory, in name order, fetched
// from the sidecar a page (1000 files) at a time.
func (c *Client) ListFiles(ctx context.Context, id string) ([]FileInfo, error) {
	var out []FileInfo
	token := ""
	for {
		page, next, err := c.ListFilesPage(ctx, id, token, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// ListFilesPage lists one page of a run's files, in name order: at most pageSize
// files (0 means 1000; at most 10000) following the page whose next token is
// pageToken ("" for the first page). The returned token is "" after the last page.
func (c *Client) ListFilesPage(ctx context.Context, id, pageToken string, pageSize uint32) ([]FileInfo, string, error) {
	var out []FileInfo
	var next string
	err := c.retrying(ctx, "ListFiles", id, func(func()) error {
		req := &pb.ListFilesRequest{RunId: id, PageToken: pageToken, PageSize: pageSize}
		resp, err := c.sc.client.ListFiles(ctx, req)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, f := range resp.GetFiles() {
			out = append(out, FileInfo{Name: f.GetName(), Size: int64(f.GetSize()), UpdatedAt: unixTime(f.GetUpdatedAt())})
		}
		next = resp.GetNextPageToken()
		return nil
	})
	return out, next, err
}

// ReadFile writes a file of a run's files directory (a name ListFiles returned) to
// w, streamed; it returns the bytes written.
func (c *Client) ReadFile(ctx context.Context, id, name string, w io.Writer) (int64, error) {
	var offset uint64
	err := c.retrying(ctx, "ReadFile", id, func(progress func()) error {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.sc.client.ReadFile(sctx, &pb.ReadFileRequest{RunId: id, Name: name, Offset: offset})
		if err != nil {
			return err
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			progress()
			if _, err := w.Write(resp.GetData()); err != nil {
				return status.Errorf(codes.Aborted, "writing %s: %v", name, err)
			}
			offset = resp.GetOffset() + uint64(len(resp.GetData()))
		}
	})
	return int64(offset), err
}
