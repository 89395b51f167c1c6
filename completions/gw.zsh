#compdef gw
# zsh completion for gw, generated from its command definitions by `gw completion zsh`.
# Do not edit: regenerate with `npm run completions` (a test fails when this file drifts).
# Install: ./install.sh puts it in PREFIX/share/zsh/site-functions/_gw (that dir must be in
# $fpath before compinit); or add `source <(gw completion zsh)` to ~/.zshrc after compinit.

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
# Subcommands and options with their descriptions.
_gw_describe_subcommands() {
  case "$1" in
    "") reply=('login:Sign in to a broker (device code in a browser), or set up a service principal' 'logout:Sign out: forget the account, its tokens (keychain or file) and the sign-in' 'whoami:Show who you are signed in as, and what the broker sees' 'connect:Open a local port tunnelled through the broker to a connection' 'ps:List the tunnels running in the background (gw connect --detach)' 'disconnect:Stop tunnels running in the background (gw connect --detach)' 'ssh-config:Print a ~/.ssh/config stanza for an ssh connection, with the broker'\''s host ke...' 'sessions:List and search recorded sessions (auditors see all, others their own), or sh...' 'replay:Replay a recorded session: SQL statements with their results, an ssh terminal...' 'audit:Check recorded sessions for tampering, and get the broker'\''s audit key' 'approve:Review held statements live and approve or deny them (full-screen)' 'approvals:List, show, approve, deny and watch statements held for approval (scriptable)' 'broker:Run and check a gw broker' 'agent:Run an outbound agent that relays the broker'\''s sessions into a private network' 'policy:Check statements against the broker'\''s policies, offline' 'mcp:Point AI agents'\'' MCP servers at a gw tunnel' 'demo:Run everything on this machine: an identity server, a broker and a database f...' 'completion:Print the shell completion script for bash, zsh or fish') ;;
    "audit") reply=('verify:Verify sessions'\'' hash chains and signed digests: intact, or exactly which eve...' 'public-key:Print the broker'\''s audit public key (Ed25519, PEM), for offline verification') ;;
    "approvals") reply=('list:Requests waiting for you (you approve them, or you asked for them)' 'show:One request in full: the statement, who asked, the rule, the session' 'approve:Approve a held statement (it runs once enough approvers have approved)' 'deny:Deny a held statement; the client gets your reason as its error' 'watch:Follow requests live (a snapshot, then each event) until interrupted') ;;
    "broker") reply=('start:Run the broker: API, discovery and tunnel endpoint' 'check:Validate a broker config file and report every problem with its path') ;;
    "agent") reply=('start:Dial out to the broker and relay sessions'\'' bytes to targets in this network (...') ;;
    "policy") reply=('test:Show what a connection'\''s policy decides for a SQL text, why, and how the SQL ...') ;;
    "mcp") reply=('config:Print (or --write into the client'\''s config) an MCP server entry that uses thi...') ;;
    *) reply=() ;;
  esac
}
_gw_describe_options() {
  case "$1" in
    "") reply=('-V:output the version number' '--version:output the version number' '-h:show help' '--help:show help') ;;
    "login") reply=('--broker:broker URL (or GW_BROKER; default: the last one)' '--ca-file:PEM file of a private or corporate CA for the broker and sign-in (or GW_CA_FILE)' '--service-principal:sign in as an app (client credentials), not as a person' '--tenant:service principal: its tenant id (or AZURE_TENANT_ID)' '--client-id:service principal: its application (client) id (or AZURE_CLIENT_ID)' '--client-secret-env:service principal: the environment variable holding its secret' '--certificate:service principal: PEM file with its certificate and private key' '--federated-token-file:service principal: file with a federated token (workload identity)' '--json:print who you are as JSON on success' '-h:show help' '--help:show help') ;;
    "logout") reply=('--json:print what was removed as JSON' '-h:show help' '--help:show help') ;;
    "whoami") reply=('--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '--json:print JSON' '-h:show help' '--help:show help') ;;
    "connect") reply=('-p:local port (default: remembered per connection; 0 = any free port)' '--port:local port (default: remembered per connection; 0 = any free port)' '--bind:local address to listen on' '--broker:broker URL (or GW_BROKER); a broker'\''s replicas: repeat it, or separate URLs w...' '--ca-file:PEM file of a private CA that signed the broker'\''s certificate (or GW_CA_FILE)' '--json:print one JSON object describing the tunnel, then keep running' '--agent:label this tunnel'\''s sessions as an AI agent'\''s (e.g. the MCP server'\''s name)' '-d:run in the background (survives the terminal; see gw ps, stop with gw disconn...' '--detach:run in the background (survives the terminal; see gw ps, stop with gw disconn...' '--local-password:local clients must give a random per-tunnel password (for shared machines)' '--accept-new-host-key:ssh connections: accept a broker SSH host key that differs from the pinned one' '-h:show help' '--help:show help') ;;
    "ps") reply=('--json:print JSON' '-h:show help' '--help:show help') ;;
    "disconnect") reply=('-a:stop every background tunnel' '--all:stop every background tunnel' '--json:print what was stopped as JSON' '-h:show help' '--help:show help') ;;
    "ssh-config") reply=('--port:the tunnel'\''s local port (default: the one gw connect remembers)' '--host-alias:the Host name in the stanza (default: the connection name)' '--accept-new-host-key:accept a broker host key that differs from the pinned one' '--json:print the stanza'\''s parts as JSON' '--broker:broker URL (or GW_BROKER)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "sessions") reply=('--connection:only sessions of this connection' '--user:only sessions of this identity: oid, upn, name, or the upn before @' '--agent:only sessions with this agent label' '--application:only sessions with this application_name' '--since:only sessions started since: a duration ago (2h, 7d) or a date' '--until:only sessions started before this' '--grep:only sessions that ran a statement containing this text' '-n:at most this many sessions' '--limit:at most this many sessions' '--db:read a copy of the broker'\''s SQLite file instead of asking the broker' '--broker:broker URL (or GW_BROKER)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '--json:print JSON' '-h:show help' '--help:show help') ;;
    "replay") reply=('--no-tui:print text instead of the player: a psql-like transcript; ssh: final screens ...' '--json:print the session, its events and statements as JSON' '--export:write the session to a file: asciicast FILE' '--play:start playing at once' '--channel:ssh: the channel to show or export (default: the first shell)' '--db:read a copy of the broker'\''s SQLite file instead of asking the broker' '--broker:broker URL (or GW_BROKER)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "audit") reply=('-h:show help' '--help:show help') ;;
    "audit verify") reply=('--connection:without session ids: only this connection'\''s sessions' '--since:without session ids: sessions started since (2h, 7d, or a date)' '-n:without session ids: at most this many (newest first)' '--limit:without session ids: at most this many (newest first)' '--db:verify a copy of the broker'\''s SQLite file offline, not via the broker' '--public-key:with --db: the broker'\''s public key (gw audit public-key --out)' '--broker:broker URL (or GW_BROKER)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '--json:print JSON' '-h:show help' '--help:show help') ;;
    "audit public-key") reply=('--out:write it to this file instead' '--broker:broker URL (or GW_BROKER)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '--json:print JSON ({ algorithm, keyId, publicKey })' '-h:show help' '--help:show help') ;;
    "approve") reply=('--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "approvals") reply=('-h:show help' '--help:show help') ;;
    "approvals list") reply=('--all:also requests that are no longer pending (approved, denied, expired…)' '--scope:mine, or all (auditors: everyone'\''s requests)' '-n:at most this many' '--limit:at most this many' '--json:print JSON' '--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "approvals show") reply=('--json:print JSON' '--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "approvals approve") reply=('--reason:why, for the audit trail' '--json:print JSON' '--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "approvals deny") reply=('--reason:why (required): the requester sees it' '--json:print JSON' '--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "approvals watch") reply=('--json:one JSON object per line: snapshot, created, decided, expired, cancelled' '--scope:mine, or all (auditors: everyone'\''s requests)' '--broker:broker URL (or GW_BROKER; default: the one of `gw login`)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '-h:show help' '--help:show help') ;;
    "broker") reply=('-h:show help' '--help:show help') ;;
    "broker start") reply=('-c:broker config (YAML)' '--config:broker config (YAML)' '--listen:override the config'\''s listen address (port 0 picks a free port)' '--json:print {url} as JSON once listening' '-h:show help' '--help:show help') ;;
    "broker check") reply=('-c:broker config (YAML)' '--config:broker config (YAML)' '--json:print the result as JSON' '-h:show help' '--help:show help') ;;
    "agent") reply=('-h:show help' '--help:show help') ;;
    "agent start") reply=('--name:the agent'\''s name: a key of the broker config'\''s agents' '--broker:broker URL (or GW_BROKER); several, comma-separated, for replicas: the agent ...' '--ca-file:PEM file of a private CA that signed the broker'\''s certificate (or GW_CA_FILE)' '--allow:a target the agent may dial, exactly as the broker'\''s config names it (repeata...' '--allow-any:dial whatever the broker asks for (instead of --allow)' '--json:log one JSON object per line on stdout' '-h:show help' '--help:show help') ;;
    "policy") reply=('-h:show help' '--help:show help') ;;
    "policy test") reply=('-c:broker config (YAML)' '--config:broker config (YAML)' '--connection:the connection whose policy applies' '--sql:the SQL text (several statements allowed)' '--as:a principal of the tester: group:, role:, user:, app: (repeatable)' '--type:user or app (default: from --as user:/app:, else user)' '--application:the client'\''s application_name' '--agent:the agent label of the session' '--json:print the result as JSON' '--exit-code:exit 10 when the decision is block, 11 when it is hold' '-h:show help' '--help:show help') ;;
    "mcp") reply=('-h:show help' '--help:show help') ;;
    "mcp config") reply=('--client:the MCP client whose config format to use' '--write:merge the entry into the client'\''s config file (a backup is kept)' '--file:the config file to print for / write to (default: the client'\''s)' '--name:the MCP server'\''s name in the config (default: gw-<name>)' '--agent:the agent label of the tunnel'\''s sessions (default: the client)' '-p:the tunnel'\''s local port (default: the remembered one)' '--port:the tunnel'\''s local port (default: the remembered one)' '--database:the database name (default: asked from the broker)' '--env:an environment variable for the server, e.g. AZURE_CLIENT_ID=... (repeatable)' '--broker:broker URL (or GW_BROKER)' '--ca-file:PEM file of a private CA (or GW_CA_FILE)' '--json:print the entry alone, as JSON' '-h:show help' '--help:show help') ;;
    "demo") reply=('--json:print one JSON line with the endpoints (for scripts), then keep running' '-p:local port of the tunnel (default: the first free from 5433)' '--port:local port of the tunnel (default: the first free from 5433)' '--embedded:use the embedded PostgreSQL (PGlite, in-process) even when a PostgreSQL serve...' '-h:show help' '--help:show help') ;;
    "completion") reply=('-h:show help' '--help:show help') ;;
    *) reply=() ;;
  esac
}

_gw() {
  local cur="${words[CURRENT]}" cmdpath="" pending="" w i subs kind
  local -a reply vals
  for ((i = 2; i < CURRENT; i++)); do
    w="${words[i]}"
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
    _gw_describe_options "$cmdpath"
    _describe -t options 'option' reply
    return
  else
    subs="$(_gw_subcommands "$cmdpath")"
    if [[ -n $subs ]]; then
      _gw_describe_subcommands "$cmdpath"
      _describe -t commands 'command' reply
      return
    fi
    kind="$(_gw_arg_kind "$cmdpath")"
  fi
  case "$kind" in
    file) _files ;;
    dir) _files -/ ;;
    connection | tunnel | choices:*)
      vals=(${="$(_gw_words "$kind" "${words[1]}")"})
      compadd -a vals
      ;;
  esac
}

if [[ "${funcstack[1]}" == "_gw" ]]; then
  _gw "$@"
else
  compdef _gw gw
fi
