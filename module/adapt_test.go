package module

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestAdaptExamples adapts every caddyfile-examples/*/Caddyfile and compares
// the JSON with testdata/<example>.golden.json (rewritten with -update).
func TestAdaptExamples(t *testing.T) {
	// The quickstart's data directory comes from the environment at adapt
	// time; adapt with its default.
	t.Setenv("APIUSERS_DATA", "")
	os.Unsetenv("APIUSERS_DATA")

	files, err := filepath.Glob("../caddyfile-examples/*/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file))
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := adapter.Adapt(body, map[string]any{"filename": file})
			if err != nil {
				t.Fatalf("adapting %s: %v", file, err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s", w)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./module -run TestAdaptExamples -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Fatalf("adapted %s differs from %s (run with -update if the change is intended):\n%s", file, golden, pretty.String())
			}
		})
	}
}
