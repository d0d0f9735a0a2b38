// Command kustomize-engine is Signet's Kustomize engine: it builds the kustomization in the
// directory named by its only argument with sigs.k8s.io/kustomize/api and writes the YAML stream
// to stdout, exactly as `kustomize build <dir>` does with its default flags (load restrictor
// RootOnly, plugins and Helm disabled, the kustomization's sortOptions or the legacy order).
// Built for GOOS=wasip1 GOARCH=wasm it has no sockets, no exec and sees only the preopened
// directory; Signet runs it in-process with node:wasi (src/render/kustomize-engine.ts).
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kustomize-engine <kustomization directory>")
		os.Exit(2)
	}
	opts := krusty.MakeDefaultOptions()
	// `kustomize build` without --reorder: the kustomization's sortOptions, else the legacy order.
	opts.Reorder = krusty.ReorderOptionUnspecified
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := resources.AsYaml()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}
