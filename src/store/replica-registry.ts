/**
 * Broker replicas sharing one store keep a registry in it: who is up, since when, and how long
 * ago each last said so. Only stores several brokers can share offer it (PostgreSQL); the
 * bookkeeping around it is src/broker/replicas.ts.
 */
export interface ReplicaInfo {
  id: string;
  /** Where the replica serves (its own idea of its URL); null when it did not say. */
  url: string | null;
  /** The id of the audit key it signs seals with (AuditSigner.keyId). */
  keyId: string | null;
  startedAt: number; // epoch ms, the replica's clock
  /** How long ago its last heartbeat was, by the store's clock (replicas' clocks may differ). */
  heartbeatAgeMs: number;
}

export interface ReplicaRegistry {
  /**
   * Registers the replica, or refreshes its heartbeat. Resolves to true when it had to be
   * registered anew: the first time, or after another replica removed it as lost.
   */
  heartbeatReplica(r: Omit<ReplicaInfo, "heartbeatAgeMs">): Promise<boolean>;
  listReplicas(): Promise<ReplicaInfo[]>;
  /**
   * Removes a replica's registration (clean shutdown, or after its sessions were closed as
   * lost). With `ifOlderThanMs`, only while its heartbeat is still that old: a replica that
   * came back meanwhile stays. Resolves to whether it removed it.
   */
  removeReplica(id: string, opts?: { ifOlderThanMs?: number }): Promise<boolean>;
}

/** The store's replica registry, when it has one. */
export function replicaRegistryOf(store: object): ReplicaRegistry | null {
  const s = store as Partial<ReplicaRegistry>;
  return typeof s.heartbeatReplica === "function" &&
    typeof s.listReplicas === "function" &&
    typeof s.removeReplica === "function"
    ? (s as ReplicaRegistry)
    : null;
}
