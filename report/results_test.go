package report

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nowt-ml/nowt/trainer"
	"github.com/stretchr/testify/require"
)

var updateResults = flag.Bool("update", false, "rewrite the generated tables of docs/results.md from the committed logs")

// resultsPage is docs/results.md, relative to this package.
const resultsPage = "../docs/results.md"

// tableMarker opens a generated table in docs/results.md: "<!-- table rules results/<name> -->" (a comparison's
// RulesTable), "<!-- table seeds results/<a> results/<b> ... -->" (SeedsTable), "<!-- table paired results/<a>
// results/<b> ... -->" (PairedTable against bp) or "<!-- table pairwise results/<a> results/<b> ... -->"
// (PairwiseTable); "<!-- end table -->" closes it.
var tableMarker = regexp.MustCompile(`(?m)^<!-- table (rules|seeds|paired|pairwise)((?: [^ \n]+)+?) -->\n`)

const tableEnd = "<!-- end table -->"

// TestResultsPage holds every generated table of docs/results.md against the run logs committed beside it in
// docs/results/<name>/<rule>/ (config.json, metrics.jsonl, wall_time.json): a number on the page that the logs
// do not give fails. After rerunning and collecting the runs: go test ./report -run TestResultsPage -update.
func TestResultsPage(t *testing.T) {
	data, err := os.ReadFile(resultsPage)
	require.NoError(t, err)
	page := string(data)
	matches := tableMarker.FindAllStringSubmatchIndex(page, -1)
	if len(matches) == 0 {
		t.Skip("docs/results.md has no generated tables")
	}
	var out strings.Builder
	last := 0
	for _, m := range matches {
		kind, dirs := page[m[2]:m[3]], strings.Fields(page[m[4]:m[5]])
		end := strings.Index(page[m[1]:], tableEnd)
		require.GreaterOrEqual(t, end, 0, "table %s %v: no %q after it", kind, dirs, tableEnd)
		got := page[m[1] : m[1]+end]
		var cs []*trainer.Comparison
		for _, dir := range dirs {
			c, err := trainer.LoadComparison(filepath.Join("../docs", dir))
			require.NoError(t, err, "table %s %v", kind, dirs)
			cs = append(cs, c)
		}
		want := ""
		switch kind {
		case "rules":
			require.Len(t, cs, 1, "a rules table reads one comparison")
			want = RulesTable(cs[0])
		case "seeds":
			want = SeedsTable(cs)
		case "paired":
			want = PairedTable(cs, "bp")
		case "pairwise":
			want = PairwiseTable(cs)
		}
		if !*updateResults {
			require.Equal(t, want, got, "docs/results.md, table %s %v, differs from its logs (go test ./report -run TestResultsPage -update rewrites it)", kind, dirs)
		}
		out.WriteString(page[last:m[1]])
		out.WriteString(want)
		last = m[1] + end
	}
	out.WriteString(page[last:])
	if *updateResults {
		require.NoError(t, os.WriteFile(resultsPage, []byte(out.String()), 0o644))
	}
}
