// Settings are typed once here. The server's own settings (everything under `aigents.` except
// the extension's keys below) come from package.json, which is generated from the server schema.
import * as os from 'node:os';
import * as vscode from 'vscode';

export const SECTION = 'aigents';

/** Keys of the `aigents` section that configure the extension, never sent to the server. */
const EXTENSION_KEYS = new Set(['server', 'trace']);

export interface ExtensionSettings {
  /** Program and arguments that start the server; empty: look it up. */
  serverCommand: string[];
}

export function getExtensionSettings(): ExtensionSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const command = config.get<string[]>('server.command', []);
  return { serverCommand: Array.isArray(command) ? command.map(expandVariables) : [] };
}

/** `${workspaceFolder}`, `${userHome}` and a leading `~` in a command argument. */
export function expandVariables(value: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
  return value
    .replace(/\$\{workspaceFolder\}/g, folder)
    .replace(/\$\{userHome\}/g, os.homedir())
    .replace(/^~(?=$|[\\/])/, os.homedir());
}

/** Names (camelCase, without `aigents.`) of the settings the server understands. */
export function serverSettingNames(extension: vscode.Extension<unknown>): string[] {
  const json = extension.packageJSON as {
    contributes?: { configuration?: { properties?: Record<string, unknown> } };
  };
  return Object.keys(json.contributes?.configuration?.properties ?? {})
    .map((key) => key.slice(SECTION.length + 1))
    .filter((name) => !EXTENSION_KEYS.has(name.split('.')[0]));
}

/**
 * The server settings the user set explicitly (user, workspace or folder). Defaults are left
 * out on purpose: the server merges editor settings over `.aigents.toml` and `AIGENTS_*`, and a
 * VS Code default must not hide a value from those.
 */
export function explicitServerSettings(
  names: string[],
  scope?: vscode.ConfigurationScope,
): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  const values: Record<string, unknown> = {};
  for (const name of names) {
    const info = config.inspect(name);
    const value = info?.workspaceFolderValue ?? info?.workspaceValue ?? info?.globalValue;
    if (value !== undefined) {
      values[name] = value;
    }
  }
  return values;
}

/** The same settings as `AIGENTS_*` variables, for the CLI (`aigents-lsp models`). */
export function settingsEnvironment(values: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === null) {
      continue;
    }
    const key = 'AIGENTS_' + name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
    env[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return env;
}
