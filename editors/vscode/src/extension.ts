// Entry point: starts `aigents-lsp` and wires the status bar, palette commands and panel.
import * as vscode from 'vscode';
import { LanguageClient, State } from 'vscode-languageclient/node';
import { AigentsCommands } from './common/commands';
import { pickModel } from './common/models';
import { NextEdits } from './common/nextedit';
import { ResultsPanel } from './common/panel';
import {
  ServerCommand,
  createClient,
  findServerCommand,
  reportMissingServer,
} from './common/server';
import { SECTION, serverSettingNames } from './common/settings';
import { STATUS_NOTIFICATION, StatusBar, StatusParams } from './common/status';

let client: LanguageClient | undefined;
let server: ServerCommand | undefined;
let starting: Promise<void> = Promise.resolve();

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel('aigents', { log: true });
  const status = new StatusBar('aigents.pickModel');
  const panel = new ResultsPanel();
  const settingNames = serverSettingNames(context.extension);
  const commands = new AigentsCommands(() => client, panel);
  const nextEdits = new NextEdits(() => client);
  context.subscriptions.push(log, status, panel);

  const stop = async (): Promise<void> => {
    const old = client;
    client = undefined;
    if (old) {
      try {
        await old.stop(2000);
      } catch (error) {
        log.warn(`stopping the server: ${String(error)}`);
      }
    }
  };

  const start = async (): Promise<void> => {
    await stop();
    server = findServerCommand();
    if (!server) {
      status.update({ state: 'offline', message: "aigents-lsp not found: pip install 'aigents-lsp[embedded]'" });
      log.error('aigents-lsp not found (setting aigents.server.command, workspace .venv/venv, PATH)');
      void reportMissingServer();
      return;
    }
    log.info(`starting ${[server.command, ...server.args].join(' ')} (from ${server.origin})`);
    const next = createClient(server, settingNames, log, () => commands.running);
    client = next;
    next.onNotification(STATUS_NOTIFICATION, (params: StatusParams) => status.update(params));
    next.onDidChangeState((event) => {
      if (event.newState === State.Stopped && client === next) {
        status.update({ state: 'offline', message: 'The server stopped. Run "aigents: Restart Server".' });
      }
    });
    status.update({ state: 'starting', message: 'Starting the aigents-lsp server…' });
    try {
      await next.start();
    } catch (error) {
      status.update({ state: 'error', message: `The server failed to start: ${String(error)}` });
      log.error(`the server failed to start: ${String(error)}`);
    }
  };
  const restart = (): Promise<void> => (starting = starting.then(start, start));

  context.subscriptions.push(
    ...commands.register(),
    ...nextEdits.register(),
    vscode.commands.registerCommand('aigents.restart', restart),
    vscode.commands.registerCommand('aigents.showOutput', () => log.show()),
    vscode.commands.registerCommand('aigents.pickModel', () => pickModel(server, settingNames, log)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(`${SECTION}.server`)) {
        void restart();
      }
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      // A folder with a .venv may have been added.
      if (!client && !vscode.workspace.getConfiguration(SECTION).get<string[]>('server.command')?.length) {
        void restart();
      }
    }),
    { dispose: () => void stop() },
  );
  await restart();
}

export async function deactivate(): Promise<void> {
  await starting;
  await client?.stop();
  client = undefined;
}
