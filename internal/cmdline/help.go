package cmdline

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// A HelpGroup is one topic of a command's --help: a heading and the
// names of the flags under it.
type HelpGroup struct {
	Title string
	Flags []string
}

// groupOf is the title of the group in groups that lists the flag name,
// or "".
func groupOf(groups []HelpGroup, name string) string {
	for _, g := range groups {
		for _, n := range g.Flags {
			if n == name {
				return g.Title
			}
		}
	}
	return ""
}

// PrintFlags writes fs's flags by group, in the order of groups, each
// group's flags sorted; deprecated aliases and other tools' spellings
// are left out. A flag no group
// lists comes last under "Other".
func PrintFlags(w io.Writer, fs *flag.FlagSet, groups []HelpGroup) {
	byGroup := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if hidden(f) {
			return
		}
		g := groupOf(groups, f.Name)
		if g == "" {
			g = "Other"
		}
		byGroup[g] = append(byGroup[g], f)
	})
	titles := make([]string, 0, len(groups)+1)
	for _, g := range groups {
		titles = append(titles, g.Title)
	}
	for _, title := range append(titles, "Other") {
		flags := byGroup[title]
		if len(flags) == 0 {
			continue
		}
		sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range flags {
			printFlag(w, f)
		}
	}
}

// printFlag writes one flag's entry: its name and kind, then its usage.
func printFlag(w io.Writer, f *flag.Flag) {
	kind, usage := flag.UnquoteUsage(f)
	line := "  " + FlagName(f.Name)
	if kind != "" {
		line += " " + kind
	}
	fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	fmt.Fprintln(w)
}

// PrintHelp writes c's --help: its usage line and long text, then, for a
// group, its commands with their short descriptions, or for a command,
// the flags of fs (c.FlagSet's) by group (PrintFlags).
func (c *Command[E]) PrintHelp(w io.Writer, fs *flag.FlagSet, groups []HelpGroup) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.UsageLine, strings.TrimSpace(c.Long))
	if len(c.Commands) == 0 {
		PrintFlags(w, fs, groups)
		return
	}
	fmt.Fprintf(w, "\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, sub := range c.Commands {
		fmt.Fprintf(tw, "\t%s\t%s\n", sub.Name(), sub.Short)
	}
	tw.Flush()
}
