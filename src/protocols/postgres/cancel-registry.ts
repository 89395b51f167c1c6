import { randomInt } from "node:crypto";
import type { Dial } from "../../net/dial.js";

/**
 * Maps the BackendKeyData gw gives each client to the target session it stands for.
 * Clients never see the target's own key: a CancelRequest must come back through the broker,
 * which checks it and forwards the real key.
 */
export interface CancelTarget {
  host: string;
  port: number;
  pid: number;
  secret: number;
  /** Only the identity that owns the session may cancel it. */
  ownerOid: string;
  connection: string;
  /** How the session reached the target (through an agent), when not directly. */
  dial?: Dial | undefined;
}

export class CancelRegistry {
  private readonly entries = new Map<string, CancelTarget>();

  /** Allocates a fresh key for a session. */
  register(target: CancelTarget): { pid: number; secret: number } {
    for (;;) {
      const pid = randomInt(1, 2 ** 31 - 1);
      const secret = randomInt(-(2 ** 31), 2 ** 31 - 1);
      const key = `${pid}:${secret}`;
      if (!this.entries.has(key)) {
        this.entries.set(key, target);
        return { pid, secret };
      }
    }
  }

  lookup(pid: number, secret: number): CancelTarget | undefined {
    return this.entries.get(`${pid}:${secret}`);
  }

  unregister(key: { pid: number; secret: number }): void {
    this.entries.delete(`${key.pid}:${key.secret}`);
  }

  get size(): number {
    return this.entries.size;
  }
}
