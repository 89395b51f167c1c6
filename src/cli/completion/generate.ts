/**
 * Completion scripts for bash, zsh and fish, generated from the command model (model.ts).
 *
 * All three work the same way: walk the words typed so far to find the command path (skipping
 * options and the values of options that take one), then offer that command's subcommands, its
 * options, or what its positional arguments / the pending option's value complete to. Live
 * names (connections, running tunnels) come from `gw __complete connections|tunnels`, which
 * answers from a cache in the config dir and refreshes it in the background.
 *
 * The output depends only on the command definitions: no version, no date, no paths, so the
 * committed completions/gw.* can be compared with it byte for byte.
 */
import {
  allCommands,
  shortDescription,
  type CommandSpec,
  type OptionSpec,
  type ValueKind,
} from "./model.js";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

const key = (c: CommandSpec) => c.path.join(" ");

function kindWord(v: ValueKind): string {
  return v.kind === "choices" ? `choices:${v.values.join(" ")}` : v.kind;
}

const valueOptions = (c: CommandSpec) =>
  c.options.filter((o) => o.takesValue).flatMap((o) => o.names);

/** `case` helpers every POSIX-ish shell (bash, zsh) can share. */
function shellCaseHelpers(root: CommandSpec, prefix: string): string {
  const cmds = allCommands(root);
  const caseFn = (name: string, pick: (c: CommandSpec) => string | null, arg = '"$1"') => {
    const arms = cmds
      .map((c) => [key(c), pick(c)] as const)
      .filter((x): x is readonly [string, string] => x[1] !== null && x[1] !== "")
      .map(([k, v]) => `    "${k}") echo "${v}" ;;`);
    return [`${prefix}${name}() {`, `  case ${arg} in`, ...arms, "  esac", "}"].join("\n");
  };
  const valueKinds: string[] = [];
  for (const c of cmds)
    for (const o of c.options)
      if (o.takesValue && o.value.kind !== "none")
        for (const n of o.names)
          valueKinds.push(`    "${key(c)}|${n}") echo "${kindWord(o.value)}" ;;`);
  return [
    "# The subcommands of a command path.",
    caseFn("_subcommands", (c) => c.subcommands.map((s) => s.name).join(" ")),
    "# Its options.",
    caseFn("_options", (c) => c.options.flatMap((o) => o.names).join(" ")),
    "# Its options that take a value.",
    caseFn("_value_options", (c) => valueOptions(c).join(" ")),
    "# What a command's positional arguments complete to.",
    caseFn("_arg_kind", (c) => (c.args.kind === "none" ? null : kindWord(c.args))),
    "# What an option's value completes to.",
    [`${prefix}_value_kind() {`, '  case "$1|$2" in', ...valueKinds, "  esac", "}"].join("\n"),
    "# Live names and fixed lists.",
    [
      `${prefix}_words() {`,
      '  case "$1" in',
      '    connection) command "$2" __complete connections 2>/dev/null ;;',
      '    tunnel) command "$2" __complete tunnels 2>/dev/null ;;',
      '    choices:*) echo "${1#choices:}" ;;',
      "  esac",
      "}",
    ].join("\n"),
  ].join("\n");
}

/** The loop both bash and zsh use to find the command path; `W` and `N` name the word array and the current index. */
function walkWords(prefix: string, first: number, words: string, current: string): string {
  return [
    `  for ((i = ${first}; i < ${current}; i++)); do`,
    `    w="\${${words}[i]}"`,
    '    if [[ -n $pending ]]; then pending=""; continue; fi',
    "    if [[ $w == -* ]]; then",
    `      if [[ $w != *=* && " $(${prefix}_value_options "$cmdpath") " == *" $w "* ]]; then pending="$w"; fi`,
    "      continue",
    "    fi",
    `    if [[ " $(${prefix}_subcommands "$cmdpath") " == *" $w "* ]]; then cmdpath="\${cmdpath:+$cmdpath }$w"; fi`,
    "  done",
  ].join("\n");
}

export function bashScript(root: CommandSpec): string {
  const p = "_gw";
  return `# bash completion for gw, generated from its command definitions by \`gw completion bash\`.
# Do not edit: regenerate with \`npm run completions\` (a test fails when this file drifts).
# Install: ./install.sh does it; or put this file in ~/.local/share/bash-completion/completions/gw,
# or add \`source <(gw completion bash)\` to ~/.bashrc.

${shellCaseHelpers(root, p)}

_gw() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmdpath="" pending="" w i subs kind
${walkWords(p, 1, "COMP_WORDS", "COMP_CWORD")}
  if [[ -n $pending ]]; then
    kind="$(${p}_value_kind "$cmdpath" "$pending")"
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(${p}_options "$cmdpath")" -- "$cur"))
    return 0
  else
    subs="$(${p}_subcommands "$cmdpath")"
    if [[ -n $subs ]]; then
      COMPREPLY=($(compgen -W "$subs" -- "$cur"))
      return 0
    fi
    kind="$(${p}_arg_kind "$cmdpath")"
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
      COMPREPLY=($(compgen -W "$(${p}_words "$kind" "\${COMP_WORDS[0]}")" -- "$cur"))
      ;;
    *) COMPREPLY=() ;;
  esac
  return 0
}

complete -F _gw gw
`;
}

const zq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function zshScript(root: CommandSpec): string {
  const p = "_gw";
  const cmds = allCommands(root);
  const describe = (name: string, items: (c: CommandSpec) => string[]) =>
    [
      `${p}_${name}() {`,
      '  case "$1" in',
      ...cmds
        .map((c) => [key(c), items(c)] as const)
        .filter(([, v]) => v.length > 0)
        .map(([k, v]) => `    "${k}") reply=(${v.map(zq).join(" ")}) ;;`),
      "    *) reply=() ;;",
      "  esac",
      "}",
    ].join("\n");
  const esc = (s: string) => s.replace(/:/g, "\\:");
  const optItems = (o: OptionSpec) =>
    o.names.map((n) => `${esc(n)}:${shortDescription(o.description)}`);
  return `#compdef gw
# zsh completion for gw, generated from its command definitions by \`gw completion zsh\`.
# Do not edit: regenerate with \`npm run completions\` (a test fails when this file drifts).
# Install: ./install.sh puts it in PREFIX/share/zsh/site-functions/_gw (that dir must be in
# $fpath before compinit); or add \`source <(gw completion zsh)\` to ~/.zshrc after compinit.

${shellCaseHelpers(root, p)}
# Subcommands and options with their descriptions.
${describe("describe_subcommands", (c) => c.subcommands.map((s) => `${esc(s.name)}:${shortDescription(s.description)}`))}
${describe("describe_options", (c) => c.options.flatMap(optItems))}

_gw() {
  local cur="\${words[CURRENT]}" cmdpath="" pending="" w i subs kind
  local -a reply vals
${walkWords(p, 2, "words", "CURRENT")}
  if [[ -n $pending ]]; then
    kind="$(${p}_value_kind "$cmdpath" "$pending")"
  elif [[ $cur == -* ]]; then
    ${p}_describe_options "$cmdpath"
    _describe -t options 'option' reply
    return
  else
    subs="$(${p}_subcommands "$cmdpath")"
    if [[ -n $subs ]]; then
      ${p}_describe_subcommands "$cmdpath"
      _describe -t commands 'command' reply
      return
    fi
    kind="$(${p}_arg_kind "$cmdpath")"
  fi
  case "$kind" in
    file) _files ;;
    dir) _files -/ ;;
    connection | tunnel | choices:*)
      vals=(\${="$(${p}_words "$kind" "\${words[1]}")"})
      compadd -a vals
      ;;
  esac
}

if [[ "\${funcstack[1]}" == "_gw" ]]; then
  _gw "$@"
else
  compdef _gw gw
fi
`;
}

const fq = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

function fishValue(v: ValueKind): string {
  switch (v.kind) {
    case "file":
      return " -r -F";
    case "dir":
      return ` -r -xa '(__fish_complete_directories)'`;
    case "connection":
      return ` -xa '(gw __complete connections 2>/dev/null)'`;
    case "tunnel":
      return ` -xa '(gw __complete tunnels 2>/dev/null)'`;
    case "choices":
      return ` -xa ${fq(v.values.join(" "))}`;
    default:
      return " -x";
  }
}

function fishArg(v: ValueKind): string {
  switch (v.kind) {
    case "file":
      return " -F";
    case "dir":
      return ` -a '(__fish_complete_directories)'`;
    case "connection":
      return ` -a '(gw __complete connections 2>/dev/null)'`;
    case "tunnel":
      return ` -a '(gw __complete tunnels 2>/dev/null)'`;
    case "choices":
      return ` -a ${fq(v.values.join(" "))}`;
    default:
      return "";
  }
}

export function fishScript(root: CommandSpec): string {
  const cmds = allCommands(root);
  const switchFn = (name: string, pick: (c: CommandSpec) => string[]) =>
    [
      `function ${name}`,
      '    switch "$argv[1]"',
      ...cmds
        .map((c) => [key(c), pick(c)] as const)
        .filter(([, v]) => v.length > 0)
        .flatMap(([k, v]) => [
          `        case ${fq(k)}`,
          `            printf '%s\\n' ${v.join(" ")}`,
        ]),
      "    end",
      "end",
    ].join("\n");
  const lines: string[] = [];
  for (const c of cmds) {
    const at = `-n ${fq(`__gw_at ${fq(key(c))}`)}`;
    for (const s of c.subcommands)
      lines.push(`complete -c gw ${at} -a ${fq(s.name)} -d ${fq(shortDescription(s.description))}`);
    for (const o of c.options) {
      const flags = o.names
        .map((n) => (n.startsWith("--") ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`))
        .join(" ");
      lines.push(
        `complete -c gw ${at} ${flags}${o.takesValue ? fishValue(o.value) : ""} -d ${fq(shortDescription(o.description))}`,
      );
    }
    if (c.args.kind !== "none" && c.subcommands.length === 0)
      lines.push(`complete -c gw ${at}${fishArg(c.args)}`);
  }
  return `# fish completion for gw, generated from its command definitions by \`gw completion fish\`.
# Do not edit: regenerate with \`npm run completions\` (a test fails when this file drifts).
# Install: ./install.sh does it; or save it as ~/.config/fish/completions/gw.fish.

${switchFn("__gw_subcommands", (c) => c.subcommands.map((s) => s.name))}

${switchFn("__gw_value_options", (c) => valueOptions(c))}

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
${lines.join("\n")}
`;
}

export function completionScript(shell: Shell, root: CommandSpec): string {
  if (shell === "bash") return bashScript(root);
  if (shell === "zsh") return zshScript(root);
  return fishScript(root);
}
