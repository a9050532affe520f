import type { CommandRule } from '@airlock/domain';

export interface RuleVerdict {
  readonly outcome: 'forwarded' | 'blocked' | 'alerted';
  readonly rule: CommandRule | null;
}

/**
 * Zone command rules, compiled once per session. A block rule wins over an
 * alert rule. Rules are defence in depth, not a sandbox: a determined user
 * can spell a command in ways no pattern foresees (aliases, scripts, base64).
 */
export class CommandRules {
  readonly #rules: readonly { rule: CommandRule; regex: RegExp }[];

  constructor(rules: readonly CommandRule[]) {
    this.#rules = rules.map((rule) => ({ rule, regex: new RegExp(rule.pattern) }));
  }

  judge(command: string): RuleVerdict {
    const matches = this.#rules.filter((r) => r.regex.test(command));
    const block = matches.find((m) => m.rule.action === 'block');
    if (block !== undefined) return { outcome: 'blocked', rule: block.rule };
    const alert = matches.find((m) => m.rule.action === 'alert');
    if (alert !== undefined) return { outcome: 'alerted', rule: alert.rule };
    return { outcome: 'forwarded', rule: null };
  }
}
