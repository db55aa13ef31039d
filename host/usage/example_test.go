package usage_test

import (
	"os"

	"github.com/sluicehq/sluice/host/store"
	"github.com/sluicehq/sluice/host/usage"
)

func ExampleWriteReport() {
	rows := []store.ReportRow{
		{Group: "engineering", Requests: 120, PromptTokens: 50000, CompletionTokens: 12345, TotalTokens: 62345, CostNanos: 1234567000},
		{Group: "sales", Requests: 7, PromptTokens: 900, CompletionTokens: 100, TotalTokens: 1000, CostNanos: 2500000},
	}
	_ = usage.WriteReport(os.Stdout, rows, store.GroupByDepartment, usage.FormatTable)
	// Output:
	// DEPARTMENT   REQUESTS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  COST_USD  CACHE_HITS  SAVED_USD
	// engineering       120          50000              12345         62345  1.234567           0   0.000000
	// sales               7            900                100          1000  0.002500           0   0.000000
	// -----------  --------  -------------  -----------------  ------------  --------  ----------  ---------
	// TOTAL             127          50900              12445         63345  1.237067           0   0.000000
}
