# Tab completion for the sample trainer in bash. After a Release build, from anywhere:
#   source samples/LeNetSharp.Trainer/completion.bash
#   lenet tr<TAB>   lenet train --ep<TAB>   lenet bench --backend <TAB>   lenet train --schedule <TAB>
# The trainer answers itself, through System.CommandLine's [suggest:POSITION] directive; where it has nothing to offer
# (a picture for predict, a path for --model or --data) bash completes file names, '@' in front included.
LENET_DLL=${LENET_DLL:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bin/Release/net10.0/LeNetSharp.Trainer.dll}
lenet() { dotnet "$LENET_DLL" "$@"; }
_lenet_complete() {
  local line=${COMP_LINE#"${COMP_WORDS[0]}"}
  line=${line# }
  local pos=$((COMP_POINT - ${#COMP_LINE} + ${#line}))
  local IFS=$'\n'
  COMPREPLY=($(dotnet "$LENET_DLL" "[suggest:$pos]" "$line" 2>/dev/null))
}
complete -o default -F _lenet_complete lenet
