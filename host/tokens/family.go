package tokens

import "strings"

// Family is the tokenizer family a model's tokens are estimated in. Only
// OpenAI publishes its tokenizer: other families are estimated from the
// o200k_base count with a margin that errs high, since the estimate sizes
// a request's reservation against the budgets and a low one would let a
// request past a budget it then overruns. The provider's reported usage,
// not the estimate, is what the ledger bills whenever the provider reports
// it.
type Family string

const (
	// O200k is OpenAI's GPT-4o, GPT-4.1, GPT-5 and o-series models (on
	// OpenAI or Azure OpenAI), and the built-in mock, which counts in it:
	// the estimate is exact but for the framing of tools and images.
	O200k Family = "o200k"
	// Claude is Anthropic's models, on Anthropic or on Bedrock. Their
	// tokenizer is not published; compared on the same texts, Claude's
	// counts run above o200k's, by about a sixth on English prose and
	// more on code. The estimate adds 30%.
	Claude Family = "claude"
	// Approximate is every other model: Gemini, and the models Bedrock
	// serves from other vendors (Amazon Nova, Meta Llama, Mistral…),
	// whose tokenizers have vocabularies of the same order as o200k's.
	// The estimate adds 10%.
	Approximate Family = "approximate"
)

// FamilyOf is the family of upstreamModel served by an upstream of
// upstreamType (openai, azure_openai, anthropic, bedrock, gemini, mock).
// A Bedrock model is named by its vendor: "anthropic.claude-…", or with a
// cross-region prefix, "eu.anthropic.claude-…".
func FamilyOf(upstreamType, upstreamModel string) Family {
	switch upstreamType {
	case "anthropic":
		return Claude
	case "bedrock":
		if strings.Contains(upstreamModel, "anthropic.") {
			return Claude
		}
		return Approximate
	case "gemini":
		return Approximate
	}
	return O200k
}

// margins are each family's estimate over o200k's, in tenths.
var margins = map[Family]int64{O200k: 10, Claude: 13, Approximate: 11}

// Estimate turns n tokens counted with o200k_base into f's estimate,
// rounded up: o200k counts are returned as they are.
func (f Family) Estimate(n int64) int64 {
	m, ok := margins[f]
	if !ok || m == 10 || n <= 0 {
		return n
	}
	return (n*m + 9) / 10
}
