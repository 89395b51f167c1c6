# fish completion for gw, generated from its command definitions by `gw completion fish`.
# Do not edit: regenerate with `npm run completions` (a test fails when this file drifts).
# Install: ./install.sh does it; or save it as ~/.config/fish/completions/gw.fish.

function __gw_subcommands
    switch "$argv[1]"
        case ''
            printf '%s\n' login logout whoami connect ps disconnect ssh-config sessions replay audit approve approvals broker agent policy mcp demo completion
        case 'audit'
            printf '%s\n' verify public-key
        case 'approvals'
            printf '%s\n' list show approve deny watch
        case 'broker'
            printf '%s\n' start check
        case 'agent'
            printf '%s\n' start
        case 'policy'
            printf '%s\n' test
        case 'mcp'
            printf '%s\n' config
    end
end

function __gw_value_options
    switch "$argv[1]"
        case 'login'
            printf '%s\n' --broker --ca-file --tenant --client-id --client-secret-env --certificate --federated-token-file
        case 'whoami'
            printf '%s\n' --broker --ca-file
        case 'connect'
            printf '%s\n' -p --port --bind --broker --ca-file --agent
        case 'ssh-config'
            printf '%s\n' --port --host-alias --broker --ca-file
        case 'sessions'
            printf '%s\n' --connection --user --agent --application --since --until --grep -n --limit --db --broker --ca-file
        case 'replay'
            printf '%s\n' --export --channel --db --broker --ca-file
        case 'audit verify'
            printf '%s\n' --connection --since -n --limit --db --public-key --broker --ca-file
        case 'audit public-key'
            printf '%s\n' --out --broker --ca-file
        case 'approve'
            printf '%s\n' --broker --ca-file
        case 'approvals list'
            printf '%s\n' --scope -n --limit --broker --ca-file
        case 'approvals show'
            printf '%s\n' --broker --ca-file
        case 'approvals approve'
            printf '%s\n' --reason --broker --ca-file
        case 'approvals deny'
            printf '%s\n' --reason --broker --ca-file
        case 'approvals watch'
            printf '%s\n' --scope --broker --ca-file
        case 'broker start'
            printf '%s\n' -c --config --listen
        case 'broker check'
            printf '%s\n' -c --config
        case 'agent start'
            printf '%s\n' --name --broker --ca-file --allow
        case 'policy test'
            printf '%s\n' -c --config --connection --sql --as --type --application --agent
        case 'mcp config'
            printf '%s\n' --client --file --name --agent -p --port --database --env --broker --ca-file
        case 'demo'
            printf '%s\n' -p --port
    end
end

# The command path typed so far ("" for gw itself, "broker start", ...).
function __gw_cmdpath
    set -l cmdpath
    set -l pending 0
    for w in (commandline -opc)[2..-1]
        if test $pending = 1
            set pending 0
            continue
        end
        if string match -q -- '-*' $w
            if not string match -q -- '*=*' $w; and contains -- $w (__gw_value_options "$cmdpath")
                set pending 1
            end
            continue
        end
        if contains -- $w (__gw_subcommands "$cmdpath")
            set cmdpath (string trim -- "$cmdpath $w")
        end
    end
    echo "$cmdpath"
end

function __gw_at
    set -l cmdpath (__gw_cmdpath)
    test "$cmdpath" = "$argv[1]"
end

complete -c gw -f
complete -c gw -n '__gw_at \'\'' -a 'login' -d 'Sign in to a broker (device code in a browser), or set up a service principal'
complete -c gw -n '__gw_at \'\'' -a 'logout' -d 'Sign out: forget the account, its tokens (keychain or file) and the sign-in'
complete -c gw -n '__gw_at \'\'' -a 'whoami' -d 'Show who you are signed in as, and what the broker sees'
complete -c gw -n '__gw_at \'\'' -a 'connect' -d 'Open a local port tunnelled through the broker to a connection'
complete -c gw -n '__gw_at \'\'' -a 'ps' -d 'List the tunnels running in the background (gw connect --detach)'
complete -c gw -n '__gw_at \'\'' -a 'disconnect' -d 'Stop tunnels running in the background (gw connect --detach)'
complete -c gw -n '__gw_at \'\'' -a 'ssh-config' -d 'Print a ~/.ssh/config stanza for an ssh connection, with the broker\'s host ke...'
complete -c gw -n '__gw_at \'\'' -a 'sessions' -d 'List and search recorded sessions (auditors see all, others their own), or sh...'
complete -c gw -n '__gw_at \'\'' -a 'replay' -d 'Replay a recorded session: SQL statements with their results, an ssh terminal...'
complete -c gw -n '__gw_at \'\'' -a 'audit' -d 'Check recorded sessions for tampering, and get the broker\'s audit key'
complete -c gw -n '__gw_at \'\'' -a 'approve' -d 'Review held statements live and approve or deny them (full-screen)'
complete -c gw -n '__gw_at \'\'' -a 'approvals' -d 'List, show, approve, deny and watch statements held for approval (scriptable)'
complete -c gw -n '__gw_at \'\'' -a 'broker' -d 'Run and check a gw broker'
complete -c gw -n '__gw_at \'\'' -a 'agent' -d 'Run an outbound agent that relays the broker\'s sessions into a private network'
complete -c gw -n '__gw_at \'\'' -a 'policy' -d 'Check statements against the broker\'s policies, offline'
complete -c gw -n '__gw_at \'\'' -a 'mcp' -d 'Point AI agents\' MCP servers at a gw tunnel'
complete -c gw -n '__gw_at \'\'' -a 'demo' -d 'Run everything on this machine: an identity server, a broker and a database f...'
complete -c gw -n '__gw_at \'\'' -a 'completion' -d 'Print the shell completion script for bash, zsh or fish'
complete -c gw -n '__gw_at \'\'' -s V -l version -d 'output the version number'
complete -c gw -n '__gw_at \'\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'login\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the last one)'
complete -c gw -n '__gw_at \'login\'' -l ca-file -r -F -d 'PEM file of a private or corporate CA for the broker and sign-in (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'login\'' -l service-principal -d 'sign in as an app (client credentials), not as a person'
complete -c gw -n '__gw_at \'login\'' -l tenant -x -d 'service principal: its tenant id (or AZURE_TENANT_ID)'
complete -c gw -n '__gw_at \'login\'' -l client-id -x -d 'service principal: its application (client) id (or AZURE_CLIENT_ID)'
complete -c gw -n '__gw_at \'login\'' -l client-secret-env -x -d 'service principal: the environment variable holding its secret'
complete -c gw -n '__gw_at \'login\'' -l certificate -r -F -d 'service principal: PEM file with its certificate and private key'
complete -c gw -n '__gw_at \'login\'' -l federated-token-file -r -F -d 'service principal: file with a federated token (workload identity)'
complete -c gw -n '__gw_at \'login\'' -l json -d 'print who you are as JSON on success'
complete -c gw -n '__gw_at \'login\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'logout\'' -l json -d 'print what was removed as JSON'
complete -c gw -n '__gw_at \'logout\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'whoami\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'whoami\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'whoami\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'whoami\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'connect\'' -s p -l port -x -d 'local port (default: remembered per connection; 0 = any free port)'
complete -c gw -n '__gw_at \'connect\'' -l bind -x -d 'local address to listen on'
complete -c gw -n '__gw_at \'connect\'' -l broker -x -d 'broker URL (or GW_BROKER); a broker\'s replicas: repeat it, or separate URLs w...'
complete -c gw -n '__gw_at \'connect\'' -l ca-file -r -F -d 'PEM file of a private CA that signed the broker\'s certificate (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'connect\'' -l json -d 'print one JSON object describing the tunnel, then keep running'
complete -c gw -n '__gw_at \'connect\'' -l agent -x -d 'label this tunnel\'s sessions as an AI agent\'s (e.g. the MCP server\'s name)'
complete -c gw -n '__gw_at \'connect\'' -s d -l detach -d 'run in the background (survives the terminal; see gw ps, stop with gw disconn...'
complete -c gw -n '__gw_at \'connect\'' -l local-password -d 'local clients must give a random per-tunnel password (for shared machines)'
complete -c gw -n '__gw_at \'connect\'' -l accept-new-host-key -d 'ssh connections: accept a broker SSH host key that differs from the pinned one'
complete -c gw -n '__gw_at \'connect\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'connect\'' -a '(gw __complete connections 2>/dev/null)'
complete -c gw -n '__gw_at \'ps\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'ps\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'disconnect\'' -s a -l all -d 'stop every background tunnel'
complete -c gw -n '__gw_at \'disconnect\'' -l json -d 'print what was stopped as JSON'
complete -c gw -n '__gw_at \'disconnect\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'disconnect\'' -a '(gw __complete tunnels 2>/dev/null)'
complete -c gw -n '__gw_at \'ssh-config\'' -l port -x -d 'the tunnel\'s local port (default: the one gw connect remembers)'
complete -c gw -n '__gw_at \'ssh-config\'' -l host-alias -x -d 'the Host name in the stanza (default: the connection name)'
complete -c gw -n '__gw_at \'ssh-config\'' -l accept-new-host-key -d 'accept a broker host key that differs from the pinned one'
complete -c gw -n '__gw_at \'ssh-config\'' -l json -d 'print the stanza\'s parts as JSON'
complete -c gw -n '__gw_at \'ssh-config\'' -l broker -x -d 'broker URL (or GW_BROKER)'
complete -c gw -n '__gw_at \'ssh-config\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'ssh-config\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'sessions\'' -l connection -xa '(gw __complete connections 2>/dev/null)' -d 'only sessions of this connection'
complete -c gw -n '__gw_at \'sessions\'' -l user -x -d 'only sessions of this identity: oid, upn, name, or the upn before @'
complete -c gw -n '__gw_at \'sessions\'' -l agent -x -d 'only sessions with this agent label'
complete -c gw -n '__gw_at \'sessions\'' -l application -x -d 'only sessions with this application_name'
complete -c gw -n '__gw_at \'sessions\'' -l since -x -d 'only sessions started since: a duration ago (2h, 7d) or a date'
complete -c gw -n '__gw_at \'sessions\'' -l until -x -d 'only sessions started before this'
complete -c gw -n '__gw_at \'sessions\'' -l grep -x -d 'only sessions that ran a statement containing this text'
complete -c gw -n '__gw_at \'sessions\'' -s n -l limit -x -d 'at most this many sessions'
complete -c gw -n '__gw_at \'sessions\'' -l db -r -F -d 'read a copy of the broker\'s SQLite file instead of asking the broker'
complete -c gw -n '__gw_at \'sessions\'' -l broker -x -d 'broker URL (or GW_BROKER)'
complete -c gw -n '__gw_at \'sessions\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'sessions\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'sessions\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'replay\'' -l no-tui -d 'print text instead of the player: a psql-like transcript; ssh: final screens ...'
complete -c gw -n '__gw_at \'replay\'' -l json -d 'print the session, its events and statements as JSON'
complete -c gw -n '__gw_at \'replay\'' -l export -x -d 'write the session to a file: asciicast FILE'
complete -c gw -n '__gw_at \'replay\'' -l play -d 'start playing at once'
complete -c gw -n '__gw_at \'replay\'' -l channel -x -d 'ssh: the channel to show or export (default: the first shell)'
complete -c gw -n '__gw_at \'replay\'' -l db -r -F -d 'read a copy of the broker\'s SQLite file instead of asking the broker'
complete -c gw -n '__gw_at \'replay\'' -l broker -x -d 'broker URL (or GW_BROKER)'
complete -c gw -n '__gw_at \'replay\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'replay\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'audit\'' -a 'verify' -d 'Verify sessions\' hash chains and signed digests: intact, or exactly which eve...'
complete -c gw -n '__gw_at \'audit\'' -a 'public-key' -d 'Print the broker\'s audit public key (Ed25519, PEM), for offline verification'
complete -c gw -n '__gw_at \'audit\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'audit verify\'' -l connection -xa '(gw __complete connections 2>/dev/null)' -d 'without session ids: only this connection\'s sessions'
complete -c gw -n '__gw_at \'audit verify\'' -l since -x -d 'without session ids: sessions started since (2h, 7d, or a date)'
complete -c gw -n '__gw_at \'audit verify\'' -s n -l limit -x -d 'without session ids: at most this many (newest first)'
complete -c gw -n '__gw_at \'audit verify\'' -l db -r -F -d 'verify a copy of the broker\'s SQLite file offline, not via the broker'
complete -c gw -n '__gw_at \'audit verify\'' -l public-key -r -F -d 'with --db: the broker\'s public key (gw audit public-key --out)'
complete -c gw -n '__gw_at \'audit verify\'' -l broker -x -d 'broker URL (or GW_BROKER)'
complete -c gw -n '__gw_at \'audit verify\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'audit verify\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'audit verify\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'audit public-key\'' -l out -r -F -d 'write it to this file instead'
complete -c gw -n '__gw_at \'audit public-key\'' -l broker -x -d 'broker URL (or GW_BROKER)'
complete -c gw -n '__gw_at \'audit public-key\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'audit public-key\'' -l json -d 'print JSON ({ algorithm, keyId, publicKey })'
complete -c gw -n '__gw_at \'audit public-key\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approve\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'approve\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'approve\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approvals\'' -a 'list' -d 'Requests waiting for you (you approve them, or you asked for them)'
complete -c gw -n '__gw_at \'approvals\'' -a 'show' -d 'One request in full: the statement, who asked, the rule, the session'
complete -c gw -n '__gw_at \'approvals\'' -a 'approve' -d 'Approve a held statement (it runs once enough approvers have approved)'
complete -c gw -n '__gw_at \'approvals\'' -a 'deny' -d 'Deny a held statement; the client gets your reason as its error'
complete -c gw -n '__gw_at \'approvals\'' -a 'watch' -d 'Follow requests live (a snapshot, then each event) until interrupted'
complete -c gw -n '__gw_at \'approvals\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approvals list\'' -l all -d 'also requests that are no longer pending (approved, denied, expired…)'
complete -c gw -n '__gw_at \'approvals list\'' -l scope -x -d 'mine, or all (auditors: everyone\'s requests)'
complete -c gw -n '__gw_at \'approvals list\'' -s n -l limit -x -d 'at most this many'
complete -c gw -n '__gw_at \'approvals list\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'approvals list\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'approvals list\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'approvals list\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approvals show\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'approvals show\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'approvals show\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'approvals show\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approvals approve\'' -l reason -x -d 'why, for the audit trail'
complete -c gw -n '__gw_at \'approvals approve\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'approvals approve\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'approvals approve\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'approvals approve\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approvals deny\'' -l reason -x -d 'why (required): the requester sees it'
complete -c gw -n '__gw_at \'approvals deny\'' -l json -d 'print JSON'
complete -c gw -n '__gw_at \'approvals deny\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'approvals deny\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'approvals deny\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'approvals watch\'' -l json -d 'one JSON object per line: snapshot, created, decided, expired, cancelled'
complete -c gw -n '__gw_at \'approvals watch\'' -l scope -x -d 'mine, or all (auditors: everyone\'s requests)'
complete -c gw -n '__gw_at \'approvals watch\'' -l broker -x -d 'broker URL (or GW_BROKER; default: the one of `gw login`)'
complete -c gw -n '__gw_at \'approvals watch\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'approvals watch\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'broker\'' -a 'start' -d 'Run the broker: API, discovery and tunnel endpoint'
complete -c gw -n '__gw_at \'broker\'' -a 'check' -d 'Validate a broker config file and report every problem with its path'
complete -c gw -n '__gw_at \'broker\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'broker start\'' -s c -l config -r -F -d 'broker config (YAML)'
complete -c gw -n '__gw_at \'broker start\'' -l listen -x -d 'override the config\'s listen address (port 0 picks a free port)'
complete -c gw -n '__gw_at \'broker start\'' -l json -d 'print {url} as JSON once listening'
complete -c gw -n '__gw_at \'broker start\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'broker check\'' -s c -l config -r -F -d 'broker config (YAML)'
complete -c gw -n '__gw_at \'broker check\'' -l json -d 'print the result as JSON'
complete -c gw -n '__gw_at \'broker check\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'agent\'' -a 'start' -d 'Dial out to the broker and relay sessions\' bytes to targets in this network (...'
complete -c gw -n '__gw_at \'agent\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'agent start\'' -l name -x -d 'the agent\'s name: a key of the broker config\'s agents'
complete -c gw -n '__gw_at \'agent start\'' -l broker -x -d 'broker URL (or GW_BROKER); several, comma-separated, for replicas: the agent ...'
complete -c gw -n '__gw_at \'agent start\'' -l ca-file -r -F -d 'PEM file of a private CA that signed the broker\'s certificate (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'agent start\'' -l allow -x -d 'a target the agent may dial, exactly as the broker\'s config names it (repeata...'
complete -c gw -n '__gw_at \'agent start\'' -l allow-any -d 'dial whatever the broker asks for (instead of --allow)'
complete -c gw -n '__gw_at \'agent start\'' -l json -d 'log one JSON object per line on stdout'
complete -c gw -n '__gw_at \'agent start\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'policy\'' -a 'test' -d 'Show what a connection\'s policy decides for a SQL text, why, and how the SQL ...'
complete -c gw -n '__gw_at \'policy\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'policy test\'' -s c -l config -r -F -d 'broker config (YAML)'
complete -c gw -n '__gw_at \'policy test\'' -l connection -xa '(gw __complete connections 2>/dev/null)' -d 'the connection whose policy applies'
complete -c gw -n '__gw_at \'policy test\'' -l sql -x -d 'the SQL text (several statements allowed)'
complete -c gw -n '__gw_at \'policy test\'' -l as -x -d 'a principal of the tester: group:, role:, user:, app: (repeatable)'
complete -c gw -n '__gw_at \'policy test\'' -l type -x -d 'user or app (default: from --as user:/app:, else user)'
complete -c gw -n '__gw_at \'policy test\'' -l application -x -d 'the client\'s application_name'
complete -c gw -n '__gw_at \'policy test\'' -l agent -x -d 'the agent label of the session'
complete -c gw -n '__gw_at \'policy test\'' -l json -d 'print the result as JSON'
complete -c gw -n '__gw_at \'policy test\'' -l exit-code -d 'exit 10 when the decision is block, 11 when it is hold'
complete -c gw -n '__gw_at \'policy test\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'mcp\'' -a 'config' -d 'Print (or --write into the client\'s config) an MCP server entry that uses thi...'
complete -c gw -n '__gw_at \'mcp\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'mcp config\'' -l client -xa 'claude cursor vscode' -d 'the MCP client whose config format to use'
complete -c gw -n '__gw_at \'mcp config\'' -l write -d 'merge the entry into the client\'s config file (a backup is kept)'
complete -c gw -n '__gw_at \'mcp config\'' -l file -r -F -d 'the config file to print for / write to (default: the client\'s)'
complete -c gw -n '__gw_at \'mcp config\'' -l name -x -d 'the MCP server\'s name in the config (default: gw-<name>)'
complete -c gw -n '__gw_at \'mcp config\'' -l agent -x -d 'the agent label of the tunnel\'s sessions (default: the client)'
complete -c gw -n '__gw_at \'mcp config\'' -s p -l port -x -d 'the tunnel\'s local port (default: the remembered one)'
complete -c gw -n '__gw_at \'mcp config\'' -l database -x -d 'the database name (default: asked from the broker)'
complete -c gw -n '__gw_at \'mcp config\'' -l env -x -d 'an environment variable for the server, e.g. AZURE_CLIENT_ID=... (repeatable)'
complete -c gw -n '__gw_at \'mcp config\'' -l broker -x -d 'broker URL (or GW_BROKER)'
complete -c gw -n '__gw_at \'mcp config\'' -l ca-file -r -F -d 'PEM file of a private CA (or GW_CA_FILE)'
complete -c gw -n '__gw_at \'mcp config\'' -l json -d 'print the entry alone, as JSON'
complete -c gw -n '__gw_at \'mcp config\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'mcp config\'' -a '(gw __complete connections 2>/dev/null)'
complete -c gw -n '__gw_at \'demo\'' -l json -d 'print one JSON line with the endpoints (for scripts), then keep running'
complete -c gw -n '__gw_at \'demo\'' -s p -l port -x -d 'local port of the tunnel (default: the first free from 5433)'
complete -c gw -n '__gw_at \'demo\'' -l embedded -d 'use the embedded PostgreSQL (PGlite, in-process) even when a PostgreSQL serve...'
complete -c gw -n '__gw_at \'demo\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'completion\'' -s h -l help -d 'show help'
complete -c gw -n '__gw_at \'completion\'' -a 'bash zsh fish'
