import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";

/**
 * One place a broker replica can be dialled: a configured broker URL, and, when its host name
 * resolves to several addresses, one of them.
 *
 * A name with several A/AAAA records is dialled address by address so that one dead address
 * can be skipped (a plain connect by name would try the first address only, or race them
 * without remembering which one is dead). The Host header and the TLS server name stay the
 * name's, so the broker's certificate is checked against the name the user gave.
 */
export interface BrokerEndpoint {
  /** The key the pool keeps its health under. */
  readonly key: string;
  /** The broker URL as given (normalized), e.g. https://gw.example.com:8443. */
  readonly url: string;
  /** The address dialled in place of the URL's host; null: the host is dialled as it is. */
  readonly address: string | null;
  /** For people: the URL, and the address when there is one. */
  readonly label: string;
  /** The origin (and path prefix) requests go to: the URL with the address for the host. */
  readonly dialUrl: string;
  /** Headers that keep the name when an address is dialled: { host }, or none. */
  readonly headers: Readonly<Record<string, string>>;
  /** The TLS server name (SNI and certificate check) when an address is dialled. */
  readonly servername: string | undefined;
}

export type Lookup = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

export const systemLookup: Lookup = (hostname) => dnsLookup(hostname, { all: true });

/** The endpoint that dials `url` itself (no address of its own). */
export function urlEndpoint(url: string): BrokerEndpoint {
  return {
    key: url,
    url,
    address: null,
    label: url,
    dialUrl: url,
    headers: {},
    servername: undefined,
  };
}

/** The endpoint that dials `address` for `url`'s host name. */
export function addressEndpoint(url: string, address: string): BrokerEndpoint {
  const u = new URL(url);
  const hostHeader = u.host;
  const servername = u.hostname;
  const path = url.slice(u.origin.length);
  u.hostname = isIP(address) === 6 ? `[${address}]` : address;
  const dialUrl = u.origin + path;
  return {
    key: `${url} ${address}`,
    url,
    address,
    label: `${url} (${address})`,
    dialUrl,
    headers: { host: hostHeader },
    servername: u.protocol === "https:" ? servername : undefined,
  };
}

/**
 * Loopback names are one machine, not replicas: dialling them by name keeps Node's own
 * IPv6/IPv4 fallback, and a broker listening on 127.0.0.1 only is not reported as a down
 * replica at ::1.
 */
function dialledByName(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "");
  return isIP(h) !== 0 || h === "localhost" || h.endsWith(".localhost");
}

/**
 * The endpoints of `urls`, in the order given and, within a name, in the resolver's order
 * (which a round-robin DNS server varies per client, spreading clients over replicas). A name
 * that resolves to one address, or not at all, is dialled by name: the error (host not found)
 * is then the one a user knows.
 */
export async function resolveEndpoints(
  urls: readonly string[],
  lookup: Lookup,
): Promise<BrokerEndpoint[]> {
  const lists = await Promise.all(
    urls.map(async (url): Promise<BrokerEndpoint[]> => {
      const hostname = new URL(url).hostname;
      if (dialledByName(hostname)) return [urlEndpoint(url)];
      let addresses: string[];
      try {
        addresses = [...new Set((await lookup(hostname)).map((a) => a.address))];
      } catch {
        return [urlEndpoint(url)];
      }
      if (addresses.length < 2) return [urlEndpoint(url)];
      return addresses.map((a) => addressEndpoint(url, a));
    }),
  );
  const seen = new Set<string>();
  return lists.flat().filter((e) => !seen.has(e.key) && seen.add(e.key));
}
