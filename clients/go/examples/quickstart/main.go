// Command quickstart is the smallest runcore program: the example of README.md,
// which a test keeps identical to this file.
package main

import (
	"context"
	"fmt"
	"log"

	runcore "github.com/runcore/runcore/clients/go"
)

func main() {
	ctx := context.Background()
	defer runcore.Close() // stops the sidecar this process spawned, if any

	run, err := runcore.Init(ctx, runcore.Options{
		Project: "quickstart",
		Config:  map[string]any{"lr": 0.01, "layers": 4},
	})
	if err != nil {
		log.Fatal(err)
	}
	for step := 0; step < 100; step++ {
		loss := 1 / float64(step+1)
		if err := run.Log(map[string]any{"loss": loss, "acc": 1 - loss}); err != nil {
			log.Fatal(err)
		}
	}
	res, err := run.Finish(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("run %s %s, %d rows in %s\nsummary: loss=%v acc=%v\n",
		res.Run.Path, res.Run.State, res.Run.HistoryRows, res.Run.Dir, res.Summary["loss"], res.Summary["acc"])
}
