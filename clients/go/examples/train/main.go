// Command train is a toy training loop logged to runcore: a config, metric
// definitions (an epoch step metric and a best-so-far summary), Log in a loop, an
// alert, a saved checkpoint, and Finish. It prints the run directory and the final
// summary.
//
//	go run ./examples/train                 # spawns runcore (RUNCORE_BIN or PATH)
//	RUNCORE_ADDRESS=unix:///tmp/rc.sock go run ./examples/train
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	runcore "github.com/runcore/runcore/clients/go"
)

func main() {
	if err := train(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func train(ctx context.Context) error {
	defer runcore.Close() // stops the sidecar this process spawned, if any

	const epochs, stepsPerEpoch = 5, 20
	run, err := runcore.Init(ctx, runcore.Options{
		Project: "go-example",
		JobType: "train",
		Tags:    []string{"example", "go"},
		Config: map[string]any{
			"lr":        0.01,
			"epochs":    epochs,
			"optimizer": map[string]any{"name": "adam", "betas": []float64{0.9, 0.999}},
		},
	})
	if err != nil {
		return err
	}
	fmt.Printf("run %s (%s) logging to %s\n", run.Path(), run.Name(), run.Address())

	// Validation metrics are plotted against the epoch; keep the best val/loss.
	if _, err := run.DefineMetric(ctx, "epoch", runcore.WithHidden(true)); err != nil {
		return err
	}
	if _, err := run.DefineMetric(ctx, "val/*", runcore.WithStepMetric("epoch")); err != nil {
		return err
	}
	if _, err := run.DefineMetric(ctx, "val/loss", runcore.WithStepMetric("epoch"),
		runcore.WithSummary("min", "best"), runcore.WithGoal(runcore.Minimize)); err != nil {
		return err
	}

	alerted := false
	for epoch := 1; epoch <= epochs && !run.ShouldStop(); epoch++ {
		for i := 0; i < stepsPerEpoch; i++ {
			t := float64((epoch-1)*stepsPerEpoch + i)
			if err := run.Log(map[string]any{
				"train/loss": 2 * math.Exp(-t/40),
				"train/acc":  1 - math.Exp(-t/30),
				"lr":         0.01 * math.Pow(0.9, float64(epoch-1)),
			}); err != nil {
				return err
			}
		}
		valLoss := 2*math.Exp(-float64(epoch*stepsPerEpoch)/40) + 0.05
		if err := run.Log(map[string]any{"epoch": epoch, "val/loss": valLoss, "val/acc": 1 - valLoss/2}); err != nil {
			return err
		}
		if valLoss < 0.5 && !alerted {
			res, err := run.Alert(ctx, "val/loss below 0.5", fmt.Sprintf("epoch %d: val/loss %.3f", epoch, valLoss),
				runcore.WithLevel(runcore.AlertInfo))
			if err != nil {
				return err
			}
			alerted = res.Sent
		}
	}

	// A checkpoint, saved as checkpoints/model.txt in the run's files.
	dir, err := os.MkdirTemp("", "train-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ckpt := filepath.Join(dir, "checkpoints", "model.txt")
	if err := os.MkdirAll(filepath.Dir(ckpt), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(ckpt, []byte("weights\n"), 0o644); err != nil {
		return err
	}
	saved, err := run.Save(ctx, filepath.Join(dir, "checkpoints", "*.txt"),
		runcore.WithBasePath(dir), runcore.WithPolicy(runcore.SaveNow))
	if err != nil {
		return err
	}
	fmt.Println("saved:", saved)

	res, err := run.Finish(ctx, 0)
	if err != nil {
		return err
	}
	summary, err := json.MarshalIndent(res.Summary, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("run %s %s after %d rows\nrun dir: %s\nsummary: %s\n",
		res.Run.Path, res.Run.State, res.Run.HistoryRows, res.Run.Dir, summary)
	return nil
}
