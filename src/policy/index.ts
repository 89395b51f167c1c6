/** The policy engine: classify SQL with PostgreSQL's parser, then decide allow / block / hold. */
export {
  classify,
  classifyUncached,
  initPolicyParser,
  policyParserReady,
  resolveExecute,
  sharedClassifier,
  StatementClassifier,
  type Classification,
  type ClassifierOptions,
  type ClassifierStats,
  type StatementInfo,
  type TableRef,
} from "./classify.js";
export {
  allowAllPolicy,
  compileConnectionPolicy,
  compilePolicy,
  DEFAULT_HOLD_TIMEOUT_MS,
  evaluate,
  formatMatch,
  sessionReadOnly,
  type ActionSpec,
  type CompiledPolicy,
  type CompiledRule,
  type Decision,
  type DecisionSource,
  type EvaluationContext,
  type HoldRequirement,
  type MatchedRule,
  type StatementDecision,
} from "./policy.js";
export { normalizeLiterals } from "./normalize.js";
export { formatDuration, parseDuration } from "./duration.js";
export {
  MASK_DETECTORS,
  MASK_STRATEGIES,
  POLICY_ACTIONS,
  STATEMENT_KINDS,
  type MaskDetector,
  type MaskStrategy,
  type PolicyAction,
  type StatementKind,
} from "./kinds.js";
