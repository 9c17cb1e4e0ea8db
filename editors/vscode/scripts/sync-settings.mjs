#!/usr/bin/env node
// Writes `contributes.configuration.properties` of package.json from the server's settings
// schema, so the server stays the one source of truth. `--check` fails when package.json is stale.
//
//   node scripts/sync-settings.mjs [--check] [--python PATH] [--package PATH]
//
// Python: `--python`, else $AIGENTS_PYTHON, else the repository's .venv, else `python3`.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');

// Settings of the extension itself: never sent to the server.
const EXTENSION_PROPERTIES = {
  'aigents.server.command': {
    type: 'array',
    items: { type: 'string' },
    default: [],
    markdownDescription:
      'Command (program and arguments) that starts the language server, e.g. ' +
      '`["/home/me/.venv/bin/aigents-lsp"]`. `${workspaceFolder}` and `~` are expanded. ' +
      "Empty: the workspace's `.venv` or `venv`, then `aigents-lsp` on `PATH`.",
    scope: 'machine-overridable',
    order: 0,
  },
  'aigents.trace.server': {
    type: 'string',
    enum: ['off', 'messages', 'verbose'],
    default: 'off',
    markdownDescription: 'Traces the LSP messages between VS Code and the server in the output channel.',
    scope: 'window',
    order: 1,
  },
};

// JSON-schema keywords VS Code understands in a setting.
const KEPT = ['type', 'enum', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'pattern', 'minLength', 'maxLength', 'items', 'properties', 'required', 'additionalProperties'];

function parseArgs(argv) {
  const args = {
    check: false,
    python: process.env.AIGENTS_PYTHON,
    packagePath: resolve(here, '..', 'package.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') args.check = true;
    else if (argv[i] === '--python') args.python = argv[++i];
    else if (argv[i] === '--package') args.packagePath = resolve(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.python) {
    const venv = [join(repoRoot, '.venv', 'bin', 'python'), join(repoRoot, '.venv', 'Scripts', 'python.exe')];
    const active = process.env.VIRTUAL_ENV ? [join(process.env.VIRTUAL_ENV, 'bin', 'python')] : [];
    args.python = [...active, ...venv].find(existsSync) ?? 'python3';
  }
  return args;
}

function serverSchema(python) {
  const code = 'import json; from aigents_lsp.config import settings_json_schema; ' +
    'print(json.dumps(settings_json_schema()))';
  return JSON.parse(execFileSync(python, ['-c', code], { encoding: 'utf8' }));
}

/** A sub-schema with its `$ref`s inlined and its `title`s dropped (VS Code shows none). */
function resolveRefs(node, defs) {
  if (Array.isArray(node)) return node.map((n) => resolveRefs(n, defs));
  if (node === null || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string') {
    return resolveRefs(defs[node.$ref.replace('#/$defs/', '')], defs);
  }
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'title') continue;
    out[key] = key === 'properties'
      ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveRefs(v, defs)]))
      : resolveRefs(value, defs);
  }
  return out;
}

/** One schema property -> one VS Code setting. `anyOf [X, null]` becomes `type: [X, "null"]`. */
export function toSetting(prop, order, defs) {
  let merged = { ...prop };
  if (Array.isArray(prop.anyOf)) {
    const types = [];
    for (const branch of prop.anyOf) {
      if (branch.type && !types.includes(branch.type)) types.push(branch.type);
      if (branch.type !== 'null') merged = { ...branch, ...merged };
    }
    merged.type = types.length === 1 ? types[0] : types;
  }
  const setting = {};
  for (const key of KEPT) {
    if (merged[key] !== undefined) setting[key] = resolveRefs(merged[key], defs);
  }
  setting.default = prop.default === undefined ? null : prop.default;
  if (prop.description) setting.markdownDescription = prop.description;
  setting.order = order;
  return setting;
}

export function settingsProperties(schema) {
  const properties = { ...EXTENSION_PROPERTIES };
  let order = Object.keys(properties).length;
  for (const [name, prop] of Object.entries(schema.properties)) {
    properties[`aigents.${name}`] = toSetting(prop, order++, schema.$defs ?? {});
  }
  return properties;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const pkg = JSON.parse(readFileSync(args.packagePath, 'utf8'));
  const wanted = settingsProperties(serverSchema(args.python));
  const current = pkg.contributes?.configuration?.properties;
  if (args.check) {
    if (JSON.stringify(current) !== JSON.stringify(wanted)) {
      const all = new Set([...Object.keys(current ?? {}), ...Object.keys(wanted)]);
      const stale = [...all].filter(
        (k) => JSON.stringify(current?.[k]) !== JSON.stringify(wanted[k]));
      console.error(`package.json settings are stale (${stale.join(', ')}): ` +
        'run `npm run sync-settings` in editors/vscode.');
      process.exit(1);
    }
    console.log(`package.json settings match the server schema (${Object.keys(wanted).length}).`);
    return;
  }
  pkg.contributes ??= {};
  pkg.contributes.configuration = { type: 'object', title: 'aigents', properties: wanted };
  writeFileSync(args.packagePath, JSON.stringify(pkg, null, 2) + '\n');
  console.log(`wrote ${Object.keys(wanted).length} settings to package.json`);
}

main();
