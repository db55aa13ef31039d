package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// plainFlags makes the help list a boolean flag as "-h, --help", the way
// --help is typed, rather than as pflag prints it since v1.1.0,
// "-h, --help[=true|false]", which reads as if a value were expected.
func plainFlags(root *cobra.Command) {
	cobra.AddTemplateFunc("plainFlagUsages", plainFlagUsages)
	t := root.UsageTemplate()
	t = strings.ReplaceAll(t, ".LocalFlags.FlagUsages", "plainFlagUsages .LocalFlags")
	t = strings.ReplaceAll(t, ".InheritedFlags.FlagUsages", "plainFlagUsages .InheritedFlags")
	root.SetUsageTemplate(t)
}

// plainFlagUsages is f.FlagUsages() without "[=true|false]", its usage
// column aligned again.
func plainFlagUsages(f *pflag.FlagSet) string {
	type row struct{ flag, usage string } // flag "" continues the usage above
	var rows []row
	width := 0
	for line := range strings.Lines(f.FlagUsages()) {
		line = strings.TrimRight(line, "\n")
		text := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(text, "-") {
			rows = append(rows, row{usage: text})
			continue
		}
		// "  -h, --help[=true|false]   help for sluice": the flag ends at
		// the first run of spaces that separates it from its usage.
		flag, usage, _ := strings.Cut(text, "  ")
		flag = line[:len(line)-len(text)] + strings.Replace(flag, "[=true|false]", "", 1)
		width = max(width, len(flag))
		rows = append(rows, row{flag, strings.TrimLeft(usage, " ")})
	}
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.flag)
		b.WriteString(strings.Repeat(" ", width-len(r.flag)+3))
		b.WriteString(r.usage)
		b.WriteByte('\n')
	}
	return b.String()
}
