// The model picker. While the server runs it asks the server (`aigents.listModels`, then
// `aigents.selectModel`, which also loads the model in LM Studio with progress); without a running
// server it falls back to `aigents-lsp models --json` and only writes the setting.
import { execFile } from 'node:child_process';
import * as vscode from 'vscode';
import { ServerCommand } from './server';
import { SECTION, explicitServerSettings, settingsEnvironment } from './settings';

const LIST_COMMAND = 'aigents.listModels';
const SET_COMMAND = 'aigents.selectModel';
const DOWNLOAD_COMMAND = 'aigents.downloadModel';

/** One model of `aigents.listModels` (docs/commands.md). */
export interface ModelInfo {
  id: string;
  type?: string;
  state?: string;
  quantization?: string | null;
  arch?: string | null;
  maxContextLength?: number | null;
  loadedContextLength?: number | null;
  usedFor?: string[];
}

interface TaskModel {
  model: string | null;
  source: 'session' | 'settings' | 'auto';
  setting: string;
}

/** A model the server suggests to download for a task no downloaded model suits. */
export interface Suggestion {
  task: string;
  model: string;
  name: string;
  quantization: string;
  sizeBytes: number;
  fits: boolean;
  why: string;
  download: { model: string; quantization?: string };
}

/** The result of `aigents.listModels` and of `aigents-lsp models --json`. */
export interface ModelList {
  provider?: string;
  models: ModelInfo[];
  tasks?: Record<string, TaskModel>;
  suggestions?: Suggestion[];
}

/** The result of `aigents.selectModel`. */
interface SetModelResult {
  model: string;
  tasks: string[];
  state?: string | null;
  load?: { how: string; seconds: number } | null;
  settings: Record<string, string | null>;
  loadConfig?: Record<string, unknown> | null;
}

type Task = 'completion' | 'chat' | 'embedding' | 'all';

/** Whether the running language client offers the server's model commands. */
async function serverOffersModels(): Promise<boolean> {
  const commands = await vscode.commands.getCommands(true);
  return commands.includes(LIST_COMMAND) && commands.includes(SET_COMMAND);
}

/** Older servers printed a bare array of models (snake_case context fields). */
function asModelList(value: unknown): ModelList {
  if (Array.isArray(value)) {
    return {
      models: value.map((m: Record<string, unknown>) => ({
        ...(m as unknown as ModelInfo),
        maxContextLength: (m.max_context_length as number | null | undefined) ?? null,
        loadedContextLength: (m.loaded_context_length as number | null | undefined) ?? null,
      })),
    };
  }
  const list = value as ModelList | undefined;
  return { ...list, models: Array.isArray(list?.models) ? list.models : [] };
}

export function listModelsWithCli(server: ServerCommand, settingNames: string[]): Promise<ModelList> {
  const settings = explicitServerSettings(settingNames);
  const env = { ...process.env, ...settingsEnvironment(settings) };
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  return new Promise((resolve, reject) => {
    execFile(
      server.command,
      [...server.args, 'models', '--json'],
      { cwd, env, timeout: 30_000, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        try {
          // A listing with a warning on stderr still exits 0; "nothing answers" exits 1.
          if (!error || stdout.trim()) {
            resolve(asModelList(JSON.parse(stdout)));
            return;
          }
        } catch {
          // fall through to the error
        }
        reject(new Error(stderr.trim() || error?.message || `unexpected output: ${stdout.slice(0, 200)}`));
      },
    );
  });
}

async function listModels(
  useServer: boolean,
  server: ServerCommand | undefined,
  settingNames: string[],
): Promise<ModelList> {
  if (useServer) {
    return asModelList(await vscode.commands.executeCommand(LIST_COMMAND, {}));
  }
  if (!server) {
    throw new Error('aigents-lsp not found');
  }
  return listModelsWithCli(server, settingNames);
}

interface ModelPick extends vscode.QuickPickItem {
  model: string | null | 'enter' | 'download';
  info?: ModelInfo;
  suggestion?: Suggestion;
}

function describe(model: ModelInfo): string {
  const context = model.loadedContextLength ?? model.maxContextLength;
  const used = model.usedFor?.length ? `used for ${model.usedFor.join(' and ')}` : '';
  return [used, model.type, model.state, model.arch, model.quantization, context ? `${context} ctx` : '']
    .filter((part) => part && part !== 'unknown')
    .join(' · ');
}

/** Asks what a language model is for (an embedding model can only embed). */
async function pickTask(model: ModelInfo | undefined, id: string): Promise<Task | undefined> {
  if (model?.type === 'embeddings') {
    return 'embedding';
  }
  const picks: (vscode.QuickPickItem & { task: Task })[] = [
    { label: 'Completion and chat', description: 'setting aigents.model', task: 'all' },
    { label: 'Code completion only', description: 'setting aigents.completionModel', task: 'completion' },
    { label: 'Chat and code actions only', description: 'setting aigents.chatModel', task: 'chat' },
  ];
  const pick = await vscode.window.showQuickPick(picks, { title: `aigents: Use ${id} for…` });
  return pick?.task;
}

/** Shows the backend's models; the choice takes effect at once and is kept in the settings. */
export async function pickModel(
  server: ServerCommand | undefined,
  settingNames: string[],
  log: vscode.LogOutputChannel,
): Promise<void> {
  const useServer = await serverOffersModels();
  const current = vscode.workspace.getConfiguration(SECTION).get<string | null>('model') ?? null;
  const picks: ModelPick[] = [
    { label: '$(wand) Automatic', description: 'the server picks a loaded model', model: null },
    { label: '$(edit) Enter a model id…', model: 'enter' },
  ];
  let placeHolder = current ? `current: ${current}` : 'current: automatic';
  if (useServer || server) {
    try {
      const list = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: 'aigents: listing models' },
        () => listModels(useServer, server, settingNames),
      );
      picks.push({ label: 'Models', kind: vscode.QuickPickItemKind.Separator, model: null });
      for (const model of list.models) {
        picks.push({
          label: model.usedFor?.length ? `$(check) ${model.id}` : model.id,
          description: describe(model),
          model: model.id,
          info: model,
        });
      }
      const suggestions = list.suggestions ?? [];
      picks.push({ label: 'Download', kind: vscode.QuickPickItemKind.Separator, model: null });
      for (const suggestion of suggestions) {
        picks.push({
          label: `$(cloud-download) ${suggestion.name} ${suggestion.quantization}`,
          description: `for ${suggestion.task} · ${(suggestion.sizeBytes / 1e9).toFixed(1)} GB · ${suggestion.why}`,
          model: 'download',
          suggestion,
        });
      }
      picks.push({ label: '$(cloud-download) Download a model…', description: 'LM Studio 0.4+', model: 'download' });
      const tasks = list.tasks;
      if (tasks) {
        placeHolder = ['completion', 'chat']
          .map((task) => `${task}: ${tasks[task]?.model ?? 'none'} (${tasks[task]?.source ?? '?'})`)
          .join(' · ');
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.warn(`listing models failed: ${message}`);
      void vscode.window.showWarningMessage(`aigents: could not list models: ${message}`);
    }
  }
  const pick = await vscode.window.showQuickPick(picks, {
    title: 'aigents: Select Model',
    placeHolder,
    matchOnDescription: true,
  });
  if (!pick) {
    return;
  }
  let model = pick.model;
  let info = pick.info;
  if (model === 'download') {
    const downloaded = await download(pick.suggestion, log);
    if (!downloaded) {
      return;
    }
    model = downloaded;
    info = undefined;
    if (pick.suggestion?.task === 'next-edit') {
      return; // downloaded; next-edit models are not chosen here
    }
  }
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
  if (model === null) {
    await writeSettings({ model: null });
    return;
  }
  // A suggestion is for one task already (next-edit returned above).
  const suggested = pick.suggestion ? (pick.suggestion.task as Task) : undefined;
  const task = suggested ?? (await pickTask(info, model));
  if (!task) {
    return;
  }
  const load = useServer && info?.state !== 'loaded' ? await pickLoadConfig(model) : {};
  if (load === undefined) {
    return;
  }
  if (!useServer) {
    const names: Record<Task, string> = {
      all: 'model',
      completion: 'completionModel',
      chat: 'chatModel',
      embedding: 'embeddingModel',
    };
    await writeSettings({ [names[task]]: model });
    return;
  }
  try {
    // The server reports $/progress while LM Studio loads the model.
    const result = (await vscode.commands.executeCommand(SET_COMMAND, { model, task, ...load })) as SetModelResult;
    await writeSettings(result.settings);
    const context = result.load && result.loadConfig?.context_length;
    const loaded = result.load
      ? ` (loaded in ${result.load.seconds.toFixed(1)} s${context ? `, context ${context}` : ''})`
      : '';
    void vscode.window.showInformationMessage(
      `aigents: ${result.model} now serves ${result.tasks.join(' and ')}${loaded}.`,
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.warn(`aigents.selectModel failed: ${message}`);
    void vscode.window.showErrorMessage(message);
  }
}

/** Downloads a suggestion (or a model id the user enters) in LM Studio; the server shows the
 * progress ($/progress: percent, MB/s, time left; cancellable). Answers the id it is listed as. */
async function download(suggestion: Suggestion | undefined, log: vscode.LogOutputChannel): Promise<string | undefined> {
  let target = suggestion?.download;
  if (!target) {
    const typed = await vscode.window.showInputBox({
      title: 'aigents: Download a model',
      prompt: 'A catalog id (ibm/granite-4-micro) or a Hugging Face URL, optionally @QUANT (@Q4_K_M)',
    });
    if (!typed?.trim()) {
      return undefined;
    }
    const at = typed.trim().lastIndexOf('@');
    const tail = at > 0 ? typed.trim().slice(at + 1) : '';
    target = tail && !tail.includes('/')
      ? { model: typed.trim().slice(0, at), quantization: tail }
      : { model: typed.trim() };
  }
  try {
    const result = (await vscode.commands.executeCommand(DOWNLOAD_COMMAND, target)) as {
      status: string;
      listedAs: string;
    };
    void vscode.window.showInformationMessage(
      `aigents: ${result.status === 'already_downloaded' ? 'already downloaded' : 'downloaded'} ${result.listedAs}.`,
    );
    return result.listedAs;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.warn(`aigents.downloadModel failed: ${message}`);
    void vscode.window.showErrorMessage(message);
    return undefined;
  }
}

/** How LM Studio is to load the model: its defaults, or a context length (and flash attention). */
async function pickLoadConfig(model: string): Promise<Record<string, number | boolean> | undefined> {
  const picks: (vscode.QuickPickItem & { context?: number })[] = [
    { label: "LM Studio's defaults", description: 'and the aigents.*ContextLength settings' },
    { label: 'Context 4096', context: 4096 },
    { label: 'Context 8192', context: 8192 },
    { label: 'Context 16384', context: 16384 },
    { label: 'Context 32768', context: 32768 },
  ];
  const pick = await vscode.window.showQuickPick(picks, { title: `aigents: Load ${model} with…` });
  if (!pick) {
    return undefined;
  }
  return pick.context ? { contextLength: pick.context } : {};
}

/** Writes settings where each is already set (so the new value is the effective one), else in
 * user settings. `null` (not removal): the server merges editor settings over its own. */
async function writeSettings(values: Record<string, string | null>): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  for (const [name, value] of Object.entries(values)) {
    const info = config.inspect(name);
    if (value === null && info?.globalValue === undefined && info?.workspaceValue === undefined
      && info?.workspaceFolderValue === undefined) {
      continue; // nothing to remove
    }
    const target =
      info?.workspaceFolderValue !== undefined || info?.workspaceValue !== undefined
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
    await config.update(name, value, target);
  }
}
