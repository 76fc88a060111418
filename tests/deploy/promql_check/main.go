// Parses PromQL expressions (a JSON list of strings on stdin) with Prometheus' own parser; prints one line per
// expression that does not parse and exits 1 if any did not.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "stdin: a JSON list of PromQL expressions:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	bad := 0
	for _, expr := range exprs {
		if _, err := p.ParseExpr(expr); err != nil {
			fmt.Printf("%q: %v\n", expr, err)
			bad++
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
