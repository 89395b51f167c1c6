/**
 * Where things go on a terminal of a given size: how many queue rows, how many detail lines,
 * and the column widths. Pure, so sizes from 60x16 to very wide are tested without a terminal.
 * The screen uses one line less than the terminal has: a frame as tall as the terminal makes
 * it scroll.
 */
export interface Columns {
  marker: number;
  id: number;
  requester: number;
  connection: number;
  /** 0 when there is no room for a statement preview. */
  statement: number;
  age: number;
  expires: number;
}

export interface Layout {
  width: number;
  /** Lines for the queue rows (or the empty state). */
  listRows: number;
  /** Lines for the detail pane; 0 when it is hidden or there is no room. */
  detailRows: number;
  columns: Columns;
}

/** Header, column titles, status line, help line. */
const FIXED_LINES = 4;
const MIN_DETAIL_LINES = 3;

export function computeLayout(
  cols: number,
  rows: number,
  count: number,
  showDetails: boolean,
  longestConnection = 10,
): Layout {
  const width = Math.max(20, cols);
  const total = Math.max(FIXED_LINES + 2, rows - 1);
  const available = Math.max(1, total - FIXED_LINES);
  let listRows: number;
  let detailRows = 0;
  if (count === 0) {
    listRows = Math.min(available, 3);
  } else if (showDetails && available - 1 - 1 >= MIN_DETAIL_LINES) {
    // The separator line above the details comes out of the same budget.
    const room = available - 1;
    const cap = Math.max(2, Math.floor(room * 0.4));
    listRows = Math.max(1, Math.min(count, cap));
    detailRows = room - listRows;
    if (detailRows < MIN_DETAIL_LINES) {
      listRows = Math.max(1, room - MIN_DETAIL_LINES);
      detailRows = room - listRows;
    }
  } else {
    listRows = Math.min(count, available);
  }
  return { width, listRows, detailRows, columns: columnsFor(width, longestConnection) };
}

export function columnsFor(width: number, longestConnection = 10): Columns {
  const marker = 2;
  const id = 8;
  const age = 4;
  const expires = 8;
  const connection = Math.min(16, Math.max(4, longestConnection, "CONNECTION".length));
  // Separators: one space between each of the columns after the marker.
  const fixed = marker + id + connection + age + expires + 5;
  const flexible = Math.max(6, width - fixed);
  let requester = flexible;
  let statement = 0;
  if (flexible >= 40) {
    requester = Math.min(26, Math.floor(flexible * 0.45));
    statement = flexible - requester - 1;
  }
  return { marker, id, requester, connection, statement, age, expires };
}
