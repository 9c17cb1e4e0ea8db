// Finding the `aigents-lsp` executable and building the language client.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Readable } from 'node:stream';
import * as vscode from 'vscode';
import {
  ApplyWorkspaceEditParams,
  CancellationToken,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
} from 'vscode-languageclient/node';
import { SECTION, explicitServerSettings, getExtensionSettings } from './settings';

export const SERVER_NAME = 'aigents-lsp';
export const INSTALL_HINT = "pip install 'aigents-lsp[embedded]'";

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where it was found, for the log. */
  origin: string;
}

const isWindows = process.platform === 'win32';

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, isWindows ? fs.constants.F_OK : fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `.venv` and `venv` of each workspace folder (POSIX `bin/`, Windows `Scripts\`). */
function venvCandidates(folders: readonly string[]): string[] {
  const names = isWindows
    ? [path.join('Scripts', `${SERVER_NAME}.exe`)]
    : [path.join('bin', SERVER_NAME)];
  return folders.flatMap((folder) =>
    ['.venv', 'venv'].flatMap((venv) => names.map((name) => path.join(folder, venv, name))),
  );
}

function onPath(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const exts = isWindows ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of dirs) {
    for (const ext of exts) {
      const file = path.join(dir, name + ext.toLowerCase());
      if (isExecutable(file)) {
        return file;
      }
    }
  }
  return undefined;
}

/** The setting, else the workspace's virtual environment, else PATH. */
export function findServerCommand(): ServerCommand | undefined {
  const configured = getExtensionSettings().serverCommand;
  if (configured.length > 0) {
    return { command: configured[0], args: configured.slice(1), origin: 'aigents.server.command' };
  }
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  const venv = venvCandidates(folders).find(isExecutable);
  if (venv) {
    return { command: venv, args: [], origin: 'workspace virtual environment' };
  }
  const found = onPath(SERVER_NAME);
  return found ? { command: found, args: [], origin: 'PATH' } : undefined;
}

/** Tells the user how to get a server, with a button to the setting. */
export async function reportMissingServer(): Promise<void> {
  const openSettings = 'Open Settings';
  const choice = await vscode.window.showErrorMessage(
    `aigents: \`${SERVER_NAME}\` was not found in the workspace's .venv/venv or on PATH. ` +
      `Install it with \`${INSTALL_HINT}\` or set "aigents.server.command".`,
    openSettings,
  );
  if (choice === openSettings) {
    await vscode.commands.executeCommand('workbench.action.openSettings', 'aigents.server.command');
  }
}

// `2026-01-01 12:00:00,000 INFO aigents_lsp.x: message`, the server's stderr log format.
const LOG_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;

/** Server log lines at their own level (the output channel adds its own timestamp). */
function forwardLog(input: Readable, channel: vscode.LogOutputChannel): void {
  const lines = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
  lines.on('line', (line) => {
    const match = LOG_LINE.exec(line);
    const level = match?.[1];
    const text = match ? match[2] : line;
    if (level === 'DEBUG') channel.debug(text);
    else if (level === 'INFO') channel.info(text);
    else if (level === 'WARNING') channel.warn(text);
    else if (level) channel.error(text);
    else channel.info(line); // tracebacks continue the previous record
  });
}

/**
 * The edit without `needsConfirmation` on its change annotations (labels are kept: they name
 * the edit in the undo history).
 */
export function withoutConfirmation(params: ApplyWorkspaceEditParams): ApplyWorkspaceEditParams {
  const annotations = params.edit.changeAnnotations;
  if (!annotations) {
    return params;
  }
  const direct = Object.fromEntries(
    Object.entries(annotations).map(([id, annotation]) => [id, { ...annotation, needsConfirmation: false }]),
  );
  return { ...params, edit: { ...params.edit, changeAnnotations: direct } };
}

/**
 * `paletteCommandRunning`: true while the user's own palette command waits for its answer. The
 * server marks AI edits `needsConfirmation`, which makes VS Code open the refactor preview: right
 * for a light-bulb action applied in passing, a needless extra step after the user asked for
 * exactly this edit (one Ctrl+Z undoes it).
 */
export function createClient(
  server: ServerCommand,
  settingNames: string[],
  outputChannel: vscode.LogOutputChannel,
  paletteCommandRunning: () => boolean = () => false,
): LanguageClient {
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const serverOptions: ServerOptions = {
    command: server.command,
    args: server.args,
    options: { cwd, env: process.env },
  };
  const clientOptions: LanguageClientOptions = {
    // Every file: completion is language-agnostic.
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    stdioOptions: { stdout: forwardLog, stderr: forwardLog },
    initializationOptions: { [SECTION]: explicitServerSettings(settingNames) },
    synchronize: { configurationSection: SECTION },
    middleware: {
      workspace: {
        handleApplyEdit: (params, next) =>
          next(paletteCommandRunning() ? withoutConfirmation(params) : params, CancellationToken.None),
        // Answer `workspace/configuration` with only what the user set, without our own keys.
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) {
            return answers;
          }
          return params.items.map((item, i) => {
            if (item.section !== SECTION) {
              return answers[i];
            }
            const scope = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined;
            return explicitServerSettings(settingNames, scope);
          });
        },
        // Send `settings: null`: the server then pulls the section through the middleware above.
        didChangeConfiguration: (_sections, next) => next(undefined),
      },
    },
  };
  return new LanguageClient(SECTION, 'aigents', serverOptions, clientOptions);
}
