// Separates positional arguments from flags for a program whose settings are read by loadSettings
// (strict, no positionals): a flag of a non-boolean setting takes the next word as its value unless it
// is written `--flag=value`; `--` ends the flags.

import { flagName, type SettingSpecs } from './settings.js';

export function splitArgv(argv: readonly string[], specs: SettingSpecs): { flags: string[]; positionals: string[] } {
  const takesValue = new Set<string>(['--settings-file']);
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.kind === 'boolean') continue;
    takesValue.add(`--${flagName(name)}`);
    takesValue.add(`--${name}`);
    if (spec.alias) takesValue.add(`-${spec.alias}`);
  }
  const flags: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a !== '-') {
      flags.push(a);
      if (!a.includes('=') && takesValue.has(a) && i + 1 < argv.length) flags.push(argv[++i] as string);
    } else {
      positionals.push(a);
    }
  }
  return { flags, positionals };
}
