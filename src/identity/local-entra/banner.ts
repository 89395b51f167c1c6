/**
 * The warning every face of the local identity server shows.
 *
 * The server hands out real-looking Entra tokens to anyone who clicks "Approve": harmless in a
 * test or a demo, a disaster if a production broker were ever pointed at it. So whoever starts it
 * for people to use (`gw demo`) prints this banner, and the device-login page shows it too.
 */
export const LOCAL_ENTRA_BANNER = "LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID";

/** The banner framed for a terminal, with the server's address and what it is for. */
export function bannerText(url: string): string {
  const lines = [
    LOCAL_ENTRA_BANNER,
    `Listening at ${url}. Anyone who can reach it can sign in as any demo identity.`,
    "For tests and demos only: never configure a production broker to trust it.",
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const rule = "!".repeat(width + 8);
  return [rule, ...lines.map((l) => `!!! ${l.padEnd(width)} !!!`), rule].join("\n");
}
