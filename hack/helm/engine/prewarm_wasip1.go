package main

// Pre-warming (src/render/wasm-runner.ts; the same file as hack/kustomize/engine's): Signet starts an instance before it has a request, so
// that Go's runtime and every imported package's initialisation (for Helm: the Kubernetes API
// scheme, the default capabilities) run off the render's critical path. This init function runs
// after all of them and before main: with SIGNET_ENGINE_PREWARMED=1 it blocks in the host until
// the runner has written the verified tree and the request into the (until then empty) preopened
// directories, then takes the command-line arguments from /req/args.json. Each instance still
// serves exactly one request.

import (
	"encoding/json"
	"fmt"
	"os"
)

// awaitRequest blocks until the runner says run (1) or quit (anything else).
//
//go:wasmimport signet await_request
func awaitRequest() int32

const requestArgsPath = "/req/args.json"

func init() {
	if os.Getenv("SIGNET_ENGINE_PREWARMED") != "1" {
		return
	}
	if awaitRequest() != 1 {
		os.Exit(0)
	}
	raw, err := os.ReadFile(requestArgsPath)
	var args []string
	if err == nil {
		err = json.Unmarshal(raw, &args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error: reading the arguments of a pre-warmed run:", err)
		os.Exit(2)
	}
	os.Args = append(os.Args[:1:1], args...)
}
