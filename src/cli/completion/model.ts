/**
 * What shell completion knows about gw, read from the commander definitions themselves, so the
 * scripts can never list a command or a flag the CLI does not have (completions/gw.* are this,
 * generated; a test fails when they drift).
 */
import type { Command, Option } from "commander";

/** How a value is completed: files, directories, live names, a fixed list, or not at all. */
export type ValueKind =
  | { kind: "none" }
  | { kind: "file" }
  | { kind: "dir" }
  | { kind: "connection" }
  | { kind: "tunnel" }
  | { kind: "choices"; values: string[] };

export interface OptionSpec {
  /** Every spelling: ["-p", "--port"]. */
  names: string[];
  description: string;
  takesValue: boolean;
  value: ValueKind;
}

export interface CommandSpec {
  /** Words from the root: [] for gw itself, ["broker", "start"]. */
  path: string[];
  name: string;
  description: string;
  options: OptionSpec[];
  subcommands: CommandSpec[];
  /** What positional arguments complete to (all of them alike). */
  args: ValueKind;
}

const NONE: ValueKind = { kind: "none" };

/** Positional arguments that name something live, by command path. */
const ARG_KINDS: Record<string, ValueKind> = {
  connect: { kind: "connection" },
  "mcp config": { kind: "connection" },
  disconnect: { kind: "tunnel" },
};

/** Options whose value names a connection (completing to the broker's list). */
const CONNECTION_OPTIONS = new Set(["--connection"]);

function optionValue(o: Option): ValueKind {
  if (!o.required && !o.optional) return NONE;
  if (o.argChoices && o.argChoices.length > 0)
    return { kind: "choices", values: [...o.argChoices] };
  if (o.long && CONNECTION_OPTIONS.has(o.long)) return { kind: "connection" };
  const placeholder = /[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1] ?? "";
  if (/^(file|path|pem)/i.test(placeholder)) return { kind: "file" };
  if (/^dir/i.test(placeholder)) return { kind: "dir" };
  return NONE;
}

function hidden(c: Command): boolean {
  return (c as unknown as { _hidden?: boolean })._hidden === true;
}

export function commandSpec(cmd: Command, path: string[] = []): CommandSpec {
  const options: OptionSpec[] = cmd.options
    .filter((o) => !o.hidden)
    .map((o) => ({
      names: [o.short, o.long].filter((n): n is string => typeof n === "string"),
      description: o.description,
      takesValue: o.required || o.optional,
      value: optionValue(o),
    }));
  options.push({
    names: ["-h", "--help"],
    description: "show help",
    takesValue: false,
    value: NONE,
  });
  const args = cmd.registeredArguments;
  let argKind: ValueKind = ARG_KINDS[path.join(" ")] ?? NONE;
  const choices = args.find((a) => a.argChoices && a.argChoices.length > 0)?.argChoices;
  if (argKind.kind === "none" && choices) argKind = { kind: "choices", values: [...choices] };
  return {
    path,
    name: path[path.length - 1] ?? cmd.name(),
    description: cmd.description(),
    options,
    subcommands: cmd.commands
      .filter((c) => !hidden(c))
      .map((c) => commandSpec(c, [...path, c.name()])),
    args: argKind,
  };
}

/** Every command, depth first, the root first. */
export function allCommands(root: CommandSpec): CommandSpec[] {
  return [root, ...root.subcommands.flatMap(allCommands)];
}

/** A one-line description, for shells that show them. */
export function shortDescription(text: string): string {
  const first = text.split("\n")[0] ?? "";
  return first.length > 80 ? `${first.slice(0, 77)}...` : first;
}
