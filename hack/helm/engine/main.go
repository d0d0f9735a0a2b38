// Command helm-engine is Signet's Helm engine: it renders one chart with helm.sh/helm/v4's own chart
// loader, values coalescing, schema validation and template engine, and writes exactly what
// `helm template NAME CHART --namespace NS --include-crds -f ... --set-json '{...}' --kube-version V
// --api-versions ...` writes to stdout: the chart's crds/ first (when includeCRDs), then the
// templates in Helm's install order, then the hooks as plain objects; NOTES.txt is dropped.
//
// Its only argument is the path of a JSON request (types below) inside the preopened directory.
// Built for GOOS=wasip1 GOARCH=wasm it has no sockets, no exec and sees only the preopened
// directory; `lookup` has no cluster client and returns empty maps. Signet runs it in-process
// with node:wasi (src/render/helm-engine.ts).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	chartpkg "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	v2loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

// request is what Signet (or a test) asks for. Paths are inside the preopened directory.
type request struct {
	Chart       string         `json:"chart"`
	ReleaseName string         `json:"releaseName"`
	Namespace   string         `json:"namespace"`
	ValuesFiles []string       `json:"valuesFiles"`
	Values      map[string]any `json:"values"`
	IncludeCRDs bool           `json:"includeCRDs"`
	// KubeVersion, e.g. "v1.36.0" (the API server's gitVersion); empty keeps Helm's default.
	KubeVersion string `json:"kubeVersion"`
	// APIVersions, when not nil, is exactly .Capabilities.APIVersions (the operator passes the
	// API server's discovery: "group/version" and "group/version/Kind").
	APIVersions []string `json:"apiVersions"`
	// ExtraAPIVersions are appended to Helm's defaults, as `helm template --api-versions`.
	ExtraAPIVersions []string `json:"extraApiVersions"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: helm-engine <request.json>")
		os.Exit(2)
	}
	out, err := run(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}

func readRequest(path string) (*request, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	req := &request{}
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(req); err != nil {
		return nil, fmt.Errorf("request %s: %w", path, err)
	}
	return req, nil
}

// userValues merges the values files in order, then the inline values (helm's -f then --set-json).
func userValues(req *request) (map[string]any, error) {
	base := map[string]any{}
	for _, file := range req.ValuesFiles {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		current, err := v2loader.LoadValues(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", file, err)
		}
		base = v2loader.MergeMaps(base, current)
	}
	if req.Values != nil {
		base = v2loader.MergeMaps(base, req.Values)
	}
	return base, nil
}

func capabilities(req *request) (*common.Capabilities, error) {
	caps := common.DefaultCapabilities.Copy()
	if req.KubeVersion != "" {
		version, err := common.ParseKubeVersion(req.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("invalid kube version '%s': %w", req.KubeVersion, err)
		}
		caps.KubeVersion = *version
	}
	if req.APIVersions != nil {
		caps.APIVersions = common.VersionSet(slices.Clone(req.APIVersions))
	}
	caps.APIVersions = append(caps.APIVersions, req.ExtraAPIVersions...)
	return caps, nil
}

// checkDependencies refuses a chart whose Chart.yaml names a dependency missing from charts/,
// as `helm template` does (action.CheckDependencies); nothing is ever downloaded.
func checkDependencies(ch *chart.Chart) error {
	var missing []string
	for _, dep := range ch.Metadata.Dependencies {
		found := slices.ContainsFunc(ch.Dependencies(), func(c *chart.Chart) bool { return c.Name() == dep.Name })
		if !found {
			missing = append(missing, dep.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("found in Chart.yaml, but missing in charts/ directory: %s", strings.Join(missing, ", "))
	}
	return nil
}

func run(requestPath string) ([]byte, error) {
	req, err := readRequest(requestPath)
	if err != nil {
		return nil, err
	}
	vals, err := userValues(req)
	if err != nil {
		return nil, err
	}
	loaded, err := loader.Load(req.Chart)
	if err != nil {
		return nil, err
	}
	ch, ok := loaded.(*chart.Chart)
	if !ok {
		return nil, errors.New("only charts of apiVersion v1 and v2 are supported")
	}
	if err := checkDependencies(ch); err != nil {
		return nil, fmt.Errorf("an error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: %w", err)
	}
	if err := chartutil.ProcessDependencies(ch, vals); err != nil {
		return nil, fmt.Errorf("chart dependencies processing failed: %w", err)
	}
	caps, err := capabilities(req)
	if err != nil {
		return nil, err
	}
	options := common.ReleaseOptions{
		Name: req.ReleaseName, Namespace: req.Namespace, Revision: 1, IsInstall: true,
	}
	renderValues, err := util.ToRenderValues(chartpkg.Charter(ch), vals, options, caps)
	if err != nil {
		return nil, err
	}
	return render(ch, renderValues, caps, req.IncludeCRDs)
}

// render is `helm template`'s output: crds/, the manifests in install order, then the hooks.
func render(ch *chart.Chart, values common.Values, caps *common.Capabilities, includeCRDs bool) ([]byte, error) {
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", ch.Metadata.KubeVersion, caps.KubeVersion.Version)
	}
	var e engine.Engine // no cluster client: `lookup` returns empty maps; DNS lookups disabled
	files, err := e.Render(ch, values)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	var doc bytes.Buffer
	if includeCRDs {
		for _, crd := range ch.CRDObjects() {
			fmt.Fprintf(&doc, "---\n# Source: %s\n%s\n", crd.Filename, string(crd.File.Data))
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(&doc, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	var out bytes.Buffer
	fmt.Fprintln(&out, strings.TrimSpace(doc.String()))
	for _, h := range hooks {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return out.Bytes(), nil
}
