// The model picker: `aigents-lsp models --json` with the same command the server runs.
import { execFile } from 'node:child_process';
import * as vscode from 'vscode';
import { ServerCommand } from './server';
import { SECTION, explicitServerSettings, settingsEnvironment } from './settings';

/** One entry of `aigents-lsp models --json` (the server's `ModelInfo`). */
export interface ModelInfo {
  id: string;
  type?: string;
  state?: string;
  max_context_length?: number | null;
  loaded_context_length?: number | null;
  arch?: string | null;
  quantization?: string | null;
}

export function listModels(server: ServerCommand, settingNames: string[]): Promise<ModelInfo[]> {
  const settings = explicitServerSettings(settingNames);
  const env = { ...process.env, ...settingsEnvironment(settings) };
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  return new Promise((resolve, reject) => {
    execFile(
      server.command,
      [...server.args, 'models', '--json'],
      { cwd, env, timeout: 30_000, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(stderr.trim() || error.message));
          return;
        }
        try {
          const models: unknown = JSON.parse(stdout);
          resolve(Array.isArray(models) ? (models as ModelInfo[]) : []);
        } catch {
          reject(new Error(`unexpected output of "models --json": ${stdout.slice(0, 200)}`));
        }
      },
    );
  });
}

interface ModelPick extends vscode.QuickPickItem {
  model: string | null | 'enter';
}

function describe(model: ModelInfo): string {
  const context = model.loaded_context_length ?? model.max_context_length;
  return [model.type, model.state, model.arch, model.quantization, context ? `${context} ctx` : '']
    .filter((part) => part && part !== 'unknown')
    .join(' · ');
}

/** Shows the backend's models and stores the choice in `aigents.model`. */
export async function pickModel(
  server: ServerCommand | undefined,
  settingNames: string[],
  log: vscode.LogOutputChannel,
): Promise<void> {
  const current = vscode.workspace.getConfiguration(SECTION).get<string | null>('model') ?? null;
  const picks: ModelPick[] = [
    { label: '$(wand) Automatic', description: 'the server picks a loaded model', model: null },
    { label: '$(edit) Enter a model id…', model: 'enter' },
  ];
  if (server) {
    try {
      const models = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: 'aigents: listing models' },
        () => listModels(server, settingNames),
      );
      picks.push({ label: 'Models', kind: vscode.QuickPickItemKind.Separator, model: null });
      for (const model of models) {
        picks.push({
          label: model.id === current ? `$(check) ${model.id}` : model.id,
          description: describe(model),
          model: model.id,
        });
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.warn(`aigents-lsp models failed: ${message}`);
      void vscode.window.showWarningMessage(`aigents: could not list models: ${message}`);
    }
  }
  const pick = await vscode.window.showQuickPick(picks, {
    title: 'aigents: Select Model',
    placeHolder: current ? `current: ${current}` : 'current: automatic',
    matchOnDescription: true,
  });
  if (!pick) {
    return;
  }
  let model = pick.model;
  if (model === 'enter') {
    const typed = await vscode.window.showInputBox({
      title: 'aigents: Model id',
      value: current ?? '',
      prompt: 'The model id as your backend lists it',
    });
    if (typed === undefined) {
      return;
    }
    model = typed.trim() || null;
  }
  await setModel(model);
}

async function setModel(model: string | null): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const info = config.inspect('model');
  // Write where it is already set so the new value is the effective one; else user settings.
  const target =
    info?.workspaceFolderValue !== undefined || info?.workspaceValue !== undefined
      ? vscode.ConfigurationTarget.Workspace
      : vscode.ConfigurationTarget.Global;
  // `null` (not removal): the server merges editor settings over its current ones.
  await config.update('model', model, target);
}
