package cmdline

import (
	"fmt"
	"strings"
)

// Shells are the shells CompletionScript has a script for.
var Shells = []string{"bash", "zsh", "fish"}

// CompletionScript returns the completion script of shell for the program
// prog: it asks "PROG completion --words -- WORDS..." (which calls
// Complete) for the words typed so far, and falls back to file names when
// the answer is empty. The program is run as the user typed it, so the
// script completes the binary it was given to.
func CompletionScript(shell, prog string) (string, error) {
	var script string
	switch shell {
	case "bash":
		script = bashScript
	case "zsh":
		script = zshScript
	case "fish":
		script = fishScript
	default:
		return "", fmt.Errorf("no completion script for the shell %q: use %s", shell, strings.Join(Shells, ", "))
	}
	fn := "_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, prog) + "_complete"
	return strings.NewReplacer("PROG", prog, "FUNC", fn).Replace(script), nil
}

// bashScript: bash splits words at "=" and ":", so the line up to the
// cursor is split again at blanks, and each answer loses what precedes
// bash's own current word in ours ("--challenge=" of "--challenge=dns-01").
const bashScript = `# bash completion for PROG ("PROG completion bash"): source it from ~/.bashrc,
# or write it to /etc/bash_completion.d/PROG.
FUNC() {
	local line=${COMP_LINE:0:COMP_POINT} cur=${COMP_WORDS[COMP_CWORD]} c
	local -a words
	read -r -a words <<<"$line"
	[[ -z $line || $line == *[[:space:]] ]] && words+=("")
	local word=${words[${#words[@]}-1]}
	local pre=${word%"$cur"} IFS=$'\n'
	COMPREPLY=()
	for c in $("${COMP_WORDS[0]}" completion --words -- "${words[@]:1}" 2>/dev/null); do
		COMPREPLY+=("${c#"$pre"}")
	done
}
complete -o default -F FUNC PROG
`

const zshScript = `#compdef PROG
# zsh completion for PROG ("PROG completion zsh"): source it from ~/.zshrc after
# compinit, or write it as _PROG to a directory in $fpath.
FUNC() {
	local -a out
	out=("${(@f)$(${words[1]} completion --words -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ -n ${out[1]} ]]; then
		compadd -Q -- "${out[@]}"
	else
		_files
	fi
}
compdef FUNC PROG
`

const fishScript = `# fish completion for PROG ("PROG completion fish"): source it, or write it to
# ~/.config/fish/completions/PROG.fish.
function FUNC
	set -l tokens (commandline -opc) (commandline -ct)
	set -l out ($tokens[1] completion --words -- $tokens[2..-1] 2>/dev/null)
	if test (count $out) -gt 0
		printf '%s\n' $out
	else
		__fish_complete_path (commandline -ct)
	end
end
complete -c PROG -f -a '(FUNC)'
`
