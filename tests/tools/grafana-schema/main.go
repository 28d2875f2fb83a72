// Command grafana-schema checks Grafana dashboards against the schema of the Grafana Foundation SDK.
//
// Usage: grafana-schema [FILE...]   (no FILE, or "-": the dashboard is read from stdin)
//
// Each dashboard is decoded strictly (unknown keys and wrong types are errors) and validated. The SDK decodes
// a panel's fieldConfig leniently, so each one is decoded strictly here too. Every problem is printed as
// "FILE: PATH: message"; the exit status is 1 if there was any, 2 if a file could not be read.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

const missingField = "required field is missing from input"

// filledByGrafana lists the panel options the schema requires but our dashboards leave out: Grafana fills a
// panel's missing options with its plugin's defaults when it loads the dashboard. Keys are the panel type and
// the path inside the panel. Only "missing" reports are dropped, never unknown keys or wrong types.
var filledByGrafana = map[string]bool{
	"stat.options.percentChangeColorMode": true,
	"stat.options.showPercentChange":      true,
	"stat.options.wideLayout":             true,
	"bargauge.options.legend":             true,
	"bargauge.options.maxVizHeight":       true,
	"bargauge.options.minVizHeight":       true,
	"bargauge.options.minVizWidth":        true,
	"bargauge.options.namePlacement":      true,
	"bargauge.options.sizing":             true,
	"bargauge.options.valueMode":          true,
	"table.options.frameIndex":            true,
	"table.options.footer.reducer":        true,
}

// A panel's path, as the SDK writes it: a top-level panel or one inside a row.
var panelPath = regexp.MustCompile(`^(panels\[\d+\](?:\.panels\[\d+\])?)\.(.+)$`)

type problem struct {
	path    string
	message string
}

type panel struct {
	Type        string          `json:"type"`
	FieldConfig json.RawMessage `json:"fieldConfig"`
	Panels      []panel         `json:"panels"`
	path        string
}

func main() {
	plugins.RegisterDefaultPlugins()
	names := os.Args[1:]
	if len(names) == 0 {
		names = []string{"-"}
	}
	failed := false
	for _, name := range names {
		raw, err := readInput(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "grafana-schema: %v\n", err)
			os.Exit(2)
		}
		for _, p := range check(raw) {
			failed = true
			fmt.Printf("%s: %s: %s\n", name, p.path, p.message)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// check returns the problems of one dashboard in the order found, without the filtered ones.
func check(raw []byte) []problem {
	var board dashboard.Dashboard
	reported := append(problems("", board.UnmarshalJSONStrict(raw)), problems("", board.Validate())...)
	panels := allPanels(raw)
	byPath := map[string]panel{}
	for _, p := range panels {
		byPath[p.path] = p
	}

	var kept []problem
	for _, p := range reported {
		// The strict decoding below reports the lenient decoding's errors again, with a precise path.
		if owner, cut := strings.CutSuffix(p.path, ".fieldConfig"); cut {
			if _, isPanel := byPath[owner]; isPanel {
				continue
			}
		}
		if p.message == missingField && filledByGrafana[schemaKey(p.path, byPath)] {
			continue
		}
		kept = append(kept, p)
	}
	for _, p := range panels {
		// A row has no fieldConfig: the SDK reports one as an unknown key.
		if p.Type == "row" || len(p.FieldConfig) == 0 || string(p.FieldConfig) == "null" {
			continue
		}
		var source dashboard.FieldConfigSource
		kept = append(kept, problems(p.path+".fieldConfig", source.UnmarshalJSONStrict(p.FieldConfig))...)
	}
	return kept
}

// allPanels lists the panels, those inside rows included, each with its path as the SDK writes it ("panels[i]",
// "panels[i].panels[j]"); none if the panels are malformed, which the strict decoding reports.
func allPanels(raw []byte) []panel {
	var board struct {
		Panels []panel `json:"panels"`
	}
	if json.Unmarshal(raw, &board) != nil {
		return nil
	}
	var found []panel
	for i, top := range board.Panels {
		top.path = "panels[" + strconv.Itoa(i) + "]"
		found = append(found, top)
		for j, nested := range top.Panels {
			nested.path = top.path + ".panels[" + strconv.Itoa(j) + "]"
			found = append(found, nested)
		}
	}
	return found
}

// schemaKey names a path of a panel by the panel's type ("stat.options.wideLayout"), any other path by itself.
func schemaKey(path string, panels map[string]panel) string {
	match := panelPath.FindStringSubmatch(path)
	if match == nil {
		return path
	}
	panel, found := panels[match[1]]
	if !found {
		return path
	}
	return panel.Type + "." + match[2]
}

// problems flattens an error of the SDK; paths are put under prefix ("$" is the document itself).
func problems(prefix string, err error) []problem {
	if err == nil {
		return nil
	}
	var many cog.BuildErrors
	if errors.As(err, &many) {
		found := make([]problem, 0, len(many))
		for _, e := range many {
			found = append(found, problem{join(prefix, e.Path), e.Message})
		}
		return found
	}
	var one *cog.BuildError
	if errors.As(err, &one) {
		return []problem{{join(prefix, one.Path), one.Message}}
	}
	if prefix == "" {
		prefix = "$"
	}
	return []problem{{prefix, err.Error()}}
}

func join(prefix, path string) string {
	if prefix == "" {
		return path
	}
	return prefix + "." + path
}
