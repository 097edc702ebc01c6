/**
 * Which policy applies to a container: Docker labels override the first matching rule, which
 * overrides the defaults. Pure: the same config and container always give the same answer.
 *
 * Labels (all optional; `autogrow.` prefix):
 *   autogrow.enable=false     never grow this container (observe and report only)
 *   autogrow.threshold=90%    grow when used >= 90% of the current size
 *   autogrow.step=5G | 25%    growth step
 *   autogrow.max-size=200G    never grow beyond this size
 *   autogrow.cooldown=10m     minimum time between threshold grows
 *   autogrow.size=2G          containerd image store: opt in to a limit the agent sets (storage)
 * An invalid value (or an unknown `autogrow.*` key) is ignored with a warning; the rule or default
 * value stays in force. Labels are not clamped to the configured values: the pool reserve and the
 * overcommit limit are what protect the host from a container asking for too much.
 */
import { errorMessage } from '../util/errors.js';
import type { Config, PolicySettings, Rule, Step } from '../config/schema.js';
import { parseDurationMs, parsePercentRatio, parseSizeBytes } from '../util/units.js';
import { globMatches } from './glob.js';

export const LABEL_PREFIX = 'autogrow.';
export const LABEL_KEYS = {
  enable: 'autogrow.enable',
  threshold: 'autogrow.threshold',
  step: 'autogrow.step',
  maxSize: 'autogrow.max-size',
  cooldown: 'autogrow.cooldown',
  /** Containerd image store only: opt in to a limit of this size (src/storage/containerd/opt-in-limit.ts). */
  size: 'autogrow.size',
} as const;

const KNOWN_LABELS: ReadonlySet<string> = new Set(Object.values(LABEL_KEYS));

/** The policy fields a rule may override (everything in `defaults`). */
const POLICY_FIELDS = [
  'enabled',
  'threshold',
  'inodeThreshold',
  'step',
  'minStep',
  'maxStep',
  'maxSize',
  'cooldown',
] as const satisfies ReadonlyArray<keyof PolicySettings>;

/** Rule name shown when labels changed at least one setting. */
export const LABEL_RULE_NAME = 'label';
/** Rule name shown when no rule matched and no label applied. */
export const DEFAULTS_RULE_NAME = 'defaults';

/** The container fields policy resolution looks at. */
export interface PolicySubject {
  id: string;
  name: string;
  image: string;
  labels: Readonly<Record<string, string>>;
}

export interface ResolvedPolicy {
  settings: PolicySettings;
  /** `label` when labels overrode something, else the matching rule's name, else `defaults`. */
  ruleName: string;
  /** Name of the matching rule even when labels overrode it (null when none matched). */
  matchedRuleName: string | null;
  /** Labels that were ignored (invalid value, unknown key) and inconsistent merged settings. */
  warnings: string[];
}

/** The display name of rule `index`: its `name`, or `rules[index]`. */
export function ruleDisplayName(rule: Rule, index: number): string {
  return rule.name ?? `rules[${index}]`;
}

/** True when every condition of the rule's `match` holds (an empty match matches everything). */
export function ruleMatches(rule: Rule, subject: PolicySubject): boolean {
  const { match } = rule;
  if (match.name !== undefined && !globMatches(match.name, subject.name)) return false;
  if (match.image !== undefined && !globMatches(match.image, subject.image)) return false;
  for (const [key, expected] of Object.entries(match.labels ?? {})) {
    const actual = subject.labels[key];
    if (actual === undefined) return false;
    if (expected !== '*' && actual !== expected) return false;
  }
  return true;
}

function parseBooleanLabel(text: string): boolean {
  const normalized = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(normalized)) return true;
  if (['false', '0', 'no', 'off'].includes(normalized)) return false;
  throw new Error('expected true or false');
}

function parseStepLabel(text: string): Step {
  const trimmed = text.trim();
  if (trimmed.endsWith('%')) {
    const ratio = parsePercentRatio(trimmed);
    if (ratio <= 0) throw new Error('expected a step above 0%');
    return { kind: 'ratio', ratio };
  }
  const bytes = parseSizeBytes(trimmed);
  if (bytes <= 0) throw new Error('expected a step above 0');
  return { kind: 'bytes', bytes };
}

function parseThresholdLabel(text: string): number {
  const ratio = parsePercentRatio(text);
  // 0% would grow on every pass until maxSize: never what anyone means.
  if (ratio <= 0) throw new Error('expected a percentage above 0%');
  return ratio;
}

function parseMaxSizeLabel(text: string): number {
  const bytes = parseSizeBytes(text);
  if (bytes <= 0) throw new Error('expected a size above 0');
  return bytes;
}

/**
 * Resolves the effective settings: defaults, then the first matching rule's fields, then valid
 * labels. Never throws: bad labels become warnings.
 */
export function resolvePolicy(config: Config, subject: PolicySubject): ResolvedPolicy {
  const warnings: string[] = [];
  // A fresh object per call, mutated locally only: this runs for every container every pass.
  const settings: PolicySettings = { ...config.defaults };
  let ruleName = DEFAULTS_RULE_NAME;
  let matchedRuleName: string | null = null;

  const ruleIndex = config.rules.findIndex((rule) => ruleMatches(rule, subject));
  const rule = ruleIndex >= 0 ? config.rules[ruleIndex] : undefined;
  if (rule) {
    matchedRuleName = ruleDisplayName(rule, ruleIndex);
    ruleName = matchedRuleName;
    for (const field of POLICY_FIELDS) {
      const value = rule[field];
      if (value !== undefined) (settings as Record<string, unknown>)[field] = value;
    }
  }

  const labelKeys = Object.keys(subject.labels).filter((key) => key.startsWith(LABEL_PREFIX));
  if (labelKeys.length > 0) {
    let labelApplied = false;
    const applyLabel = <K extends keyof PolicySettings>(
      labelKey: string,
      field: K,
      parse: (text: string) => PolicySettings[K],
      hint: string,
    ): void => {
      const raw = subject.labels[labelKey];
      if (raw === undefined) return;
      try {
        settings[field] = parse(raw);
        labelApplied = true;
      } catch (error) {
        warnings.push(
          `label ${labelKey}=${JSON.stringify(raw)} ignored: ${errorMessage(error)} (expected ${hint}); using ${ruleName}`,
        );
      }
    };
    applyLabel(LABEL_KEYS.enable, 'enabled', parseBooleanLabel, 'true or false');
    applyLabel(LABEL_KEYS.threshold, 'threshold', parseThresholdLabel, 'a percentage such as 90%');
    applyLabel(LABEL_KEYS.step, 'step', parseStepLabel, 'a percentage such as 20% or a size such as 5G');
    applyLabel(LABEL_KEYS.maxSize, 'maxSize', parseMaxSizeLabel, 'a size such as 200G');
    applyLabel(LABEL_KEYS.cooldown, 'cooldown', parseDurationMs, 'a duration such as 5m');
    for (const key of labelKeys.sort()) {
      if (!KNOWN_LABELS.has(key)) {
        warnings.push(
          `label ${key} ignored: unknown autogrow label (known: ${[...KNOWN_LABELS].join(', ')})`,
        );
      }
    }
    if (labelApplied) ruleName = LABEL_RULE_NAME;
  }

  // A rule can set minStep above a default maxStep (or the reverse); the cap wins, loudly.
  if (settings.minStep > settings.maxStep) {
    warnings.push(
      `minStep (${settings.minStep} bytes) is above maxStep (${settings.maxStep} bytes) for ${ruleName}; using maxStep as the minimum`,
    );
    settings.minStep = settings.maxStep;
  }
  return { settings, ruleName, matchedRuleName, warnings };
}

/**
 * Configuration problems that do not stop the agent but deserve a warning at start and in
 * `config check`: rules shadowed by an earlier match-everything rule, inconsistent step bounds.
 */
export function lintPolicyConfig(config: Config): string[] {
  const warnings: string[] = [];
  const { defaults } = config;
  if (defaults.minStep > defaults.maxStep) {
    warnings.push('defaults: minStep is above maxStep; maxStep is used as the minimum');
  }
  const catchAllIndex = config.rules.findIndex(
    (rule) => rule.match.name === undefined && rule.match.image === undefined && !rule.match.labels,
  );
  config.rules.forEach((rule, index) => {
    const name = ruleDisplayName(rule, index);
    if (catchAllIndex >= 0 && index > catchAllIndex) {
      warnings.push(
        `${name}: never applies, ${ruleDisplayName(config.rules[catchAllIndex]!, catchAllIndex)} matches every container first`,
      );
    }
    const minStep = rule.minStep ?? defaults.minStep;
    const maxStep = rule.maxStep ?? defaults.maxStep;
    if (minStep > maxStep) warnings.push(`${name}: minStep is above maxStep; maxStep is used as the minimum`);
    const threshold = rule.threshold ?? defaults.threshold;
    if (threshold <= 0) warnings.push(`${name}: threshold 0% grows on every pass until maxSize`);
  });
  if (defaults.threshold <= 0) warnings.push('defaults: threshold 0% grows on every pass until maxSize');
  return warnings;
}
