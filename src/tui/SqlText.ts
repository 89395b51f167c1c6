import { Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { SqlToken } from "./approve/sql.js";
import { useTheme, type Theme } from "./theme.js";

function colorOf(theme: Theme, kind: SqlToken["kind"]): string | undefined {
  switch (kind) {
    case "keyword":
      return theme.keyword;
    case "string":
      return theme.string;
    case "number":
      return theme.number;
    case "comment":
      return theme.comment;
    default:
      return undefined;
  }
}

/** One display line of SQL, keywords highlighted (bold without colours). */
export function SqlLine(props: { tokens: SqlToken[] }): ReactElement {
  const theme = useTheme();
  return h(
    Text,
    { wrap: "truncate-end" },
    props.tokens.length === 0
      ? " "
      : props.tokens.map((t, i) =>
          h(
            Text,
            {
              key: i,
              ...(colorOf(theme, t.kind) ? { color: colorOf(theme, t.kind) } : {}),
              bold: t.kind === "keyword",
            },
            t.text,
          ),
        ),
  );
}
