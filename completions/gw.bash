# bash completion for gw, generated from its command definitions by `gw completion bash`.
# Do not edit: regenerate with `npm run completions` (a test fails when this file drifts).
# Install: ./install.sh does it; or put this file in ~/.local/share/bash-completion/completions/gw,
# or add `source <(gw completion bash)` to ~/.bashrc.

# The subcommands of a command path.
_gw_subcommands() {
  case "$1" in
    "") echo "login logout whoami connect ps disconnect ssh-config sessions replay audit approve approvals broker agent policy mcp demo completion" ;;
    "audit") echo "verify public-key" ;;
    "approvals") echo "list show approve deny watch" ;;
    "broker") echo "start check" ;;
    "agent") echo "start" ;;
    "policy") echo "test" ;;
    "mcp") echo "config" ;;
  esac
}
# Its options.
_gw_options() {
  case "$1" in
    "") echo "-V --version -h --help" ;;
    "login") echo "--broker --ca-file --service-principal --tenant --client-id --client-secret-env --certificate --federated-token-file --json -h --help" ;;
    "logout") echo "--json -h --help" ;;
    "whoami") echo "--broker --ca-file --json -h --help" ;;
    "connect") echo "-p --port --bind --broker --ca-file --json --agent -d --detach --local-password --accept-new-host-key -h --help" ;;
    "ps") echo "--json -h --help" ;;
    "disconnect") echo "-a --all --json -h --help" ;;
    "ssh-config") echo "--port --host-alias --accept-new-host-key --json --broker --ca-file -h --help" ;;
    "sessions") echo "--connection --user --agent --application --since --until --grep -n --limit --db --broker --ca-file --json -h --help" ;;
    "replay") echo "--no-tui --json --export --play --channel --db --broker --ca-file -h --help" ;;
    "audit") echo "-h --help" ;;
    "audit verify") echo "--connection --since -n --limit --db --public-key --broker --ca-file --json -h --help" ;;
    "audit public-key") echo "--out --broker --ca-file --json -h --help" ;;
    "approve") echo "--broker --ca-file -h --help" ;;
    "approvals") echo "-h --help" ;;
    "approvals list") echo "--all --scope -n --limit --json --broker --ca-file -h --help" ;;
    "approvals show") echo "--json --broker --ca-file -h --help" ;;
    "approvals approve") echo "--reason --json --broker --ca-file -h --help" ;;
    "approvals deny") echo "--reason --json --broker --ca-file -h --help" ;;
    "approvals watch") echo "--json --scope --broker --ca-file -h --help" ;;
    "broker") echo "-h --help" ;;
    "broker start") echo "-c --config --listen --json -h --help" ;;
    "broker check") echo "-c --config --json -h --help" ;;
    "agent") echo "-h --help" ;;
    "agent start") echo "--name --broker --ca-file --allow --allow-any --json -h --help" ;;
    "policy") echo "-h --help" ;;
    "policy test") echo "-c --config --connection --sql --as --type --application --agent --json --exit-code -h --help" ;;
    "mcp") echo "-h --help" ;;
    "mcp config") echo "--client --write --file --name --agent -p --port --database --env --broker --ca-file --json -h --help" ;;
    "demo") echo "--json -p --port --embedded -h --help" ;;
    "completion") echo "-h --help" ;;
  esac
}
# Its options that take a value.
_gw_value_options() {
  case "$1" in
    "login") echo "--broker --ca-file --tenant --client-id --client-secret-env --certificate --federated-token-file" ;;
    "whoami") echo "--broker --ca-file" ;;
    "connect") echo "-p --port --bind --broker --ca-file --agent" ;;
    "ssh-config") echo "--port --host-alias --broker --ca-file" ;;
    "sessions") echo "--connection --user --agent --application --since --until --grep -n --limit --db --broker --ca-file" ;;
    "replay") echo "--export --channel --db --broker --ca-file" ;;
    "audit verify") echo "--connection --since -n --limit --db --public-key --broker --ca-file" ;;
    "audit public-key") echo "--out --broker --ca-file" ;;
    "approve") echo "--broker --ca-file" ;;
    "approvals list") echo "--scope -n --limit --broker --ca-file" ;;
    "approvals show") echo "--broker --ca-file" ;;
    "approvals approve") echo "--reason --broker --ca-file" ;;
    "approvals deny") echo "--reason --broker --ca-file" ;;
    "approvals watch") echo "--scope --broker --ca-file" ;;
    "broker start") echo "-c --config --listen" ;;
    "broker check") echo "-c --config" ;;
    "agent start") echo "--name --broker --ca-file --allow" ;;
    "policy test") echo "-c --config --connection --sql --as --type --application --agent" ;;
    "mcp config") echo "--client --file --name --agent -p --port --database --env --broker --ca-file" ;;
    "demo") echo "-p --port" ;;
  esac
}
# What a command's positional arguments complete to.
_gw_arg_kind() {
  case "$1" in
    "connect") echo "connection" ;;
    "disconnect") echo "tunnel" ;;
    "mcp config") echo "connection" ;;
    "completion") echo "choices:bash zsh fish" ;;
  esac
}
# What an option's value completes to.
_gw_value_kind() {
  case "$1|$2" in
    "login|--ca-file") echo "file" ;;
    "login|--certificate") echo "file" ;;
    "login|--federated-token-file") echo "file" ;;
    "whoami|--ca-file") echo "file" ;;
    "connect|--ca-file") echo "file" ;;
    "ssh-config|--ca-file") echo "file" ;;
    "sessions|--connection") echo "connection" ;;
    "sessions|--db") echo "file" ;;
    "sessions|--ca-file") echo "file" ;;
    "replay|--db") echo "file" ;;
    "replay|--ca-file") echo "file" ;;
    "audit verify|--connection") echo "connection" ;;
    "audit verify|--db") echo "file" ;;
    "audit verify|--public-key") echo "file" ;;
    "audit verify|--ca-file") echo "file" ;;
    "audit public-key|--out") echo "file" ;;
    "audit public-key|--ca-file") echo "file" ;;
    "approve|--ca-file") echo "file" ;;
    "approvals list|--ca-file") echo "file" ;;
    "approvals show|--ca-file") echo "file" ;;
    "approvals approve|--ca-file") echo "file" ;;
    "approvals deny|--ca-file") echo "file" ;;
    "approvals watch|--ca-file") echo "file" ;;
    "broker start|-c") echo "file" ;;
    "broker start|--config") echo "file" ;;
    "broker check|-c") echo "file" ;;
    "broker check|--config") echo "file" ;;
    "agent start|--ca-file") echo "file" ;;
    "policy test|-c") echo "file" ;;
    "policy test|--config") echo "file" ;;
    "policy test|--connection") echo "connection" ;;
    "mcp config|--client") echo "choices:claude cursor vscode" ;;
    "mcp config|--file") echo "file" ;;
    "mcp config|--ca-file") echo "file" ;;
  esac
}
# Live names and fixed lists.
_gw_words() {
  case "$1" in
    connection) command "$2" __complete connections 2>/dev/null ;;
    tunnel) command "$2" __complete tunnels 2>/dev/null ;;
    choices:*) echo "${1#choices:}" ;;
  esac
}

_gw() {
  local cur="${COMP_WORDS[COMP_CWORD]}" cmdpath="" pending="" w i subs kind
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    if [[ -n $pending ]]; then pending=""; continue; fi
    if [[ $w == -* ]]; then
      if [[ $w != *=* && " $(_gw_value_options "$cmdpath") " == *" $w "* ]]; then pending="$w"; fi
      continue
    fi
    if [[ " $(_gw_subcommands "$cmdpath") " == *" $w "* ]]; then cmdpath="${cmdpath:+$cmdpath }$w"; fi
  done
  if [[ -n $pending ]]; then
    kind="$(_gw_value_kind "$cmdpath" "$pending")"
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_gw_options "$cmdpath")" -- "$cur"))
    return 0
  else
    subs="$(_gw_subcommands "$cmdpath")"
    if [[ -n $subs ]]; then
      COMPREPLY=($(compgen -W "$subs" -- "$cur"))
      return 0
    fi
    kind="$(_gw_arg_kind "$cmdpath")"
  fi
  case "$kind" in
    file)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
      ;;
    dir)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -d -- "$cur"))
      ;;
    connection | tunnel | choices:*)
      COMPREPLY=($(compgen -W "$(_gw_words "$kind" "${COMP_WORDS[0]}")" -- "$cur"))
      ;;
    *) COMPREPLY=() ;;
  esac
  return 0
}

complete -F _gw gw
