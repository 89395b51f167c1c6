import { useStdout } from "ink";
import { useEffect, useState } from "react";

export interface TerminalSize {
  columns: number;
  rows: number;
}

const read = (s: NodeJS.WriteStream): TerminalSize => ({
  columns: s.columns > 0 ? s.columns : 80,
  rows: s.rows > 0 ? s.rows : 24,
});

/** The terminal's size, following resizes (SIGWINCH arrives as the stream's "resize"). */
export function useTerminalSize(): TerminalSize {
  const { stdout } = useStdout();
  const [size, setSize] = useState(() => read(stdout));
  useEffect(() => {
    const onResize = () => setSize(read(stdout));
    stdout.on("resize", onResize);
    onResize();
    return () => {
      stdout.off("resize", onResize);
    };
  }, [stdout]);
  return size;
}
