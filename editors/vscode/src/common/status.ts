// The status bar item, fed by the server's `aigents/status` notification.
import * as vscode from 'vscode';

export type ServerState = 'starting' | 'ready' | 'busy' | 'error' | 'offline';

/** `{state, provider, model, message}` as documented in docs/commands.md. */
export interface StatusParams {
  state: ServerState;
  provider?: string | null;
  model?: string | null;
  message?: string | null;
}

export const STATUS_NOTIFICATION = 'aigents/status';

const ICONS: Record<ServerState, string> = {
  starting: '$(loading~spin)',
  ready: '',
  busy: '$(sync~spin)',
  error: '$(error)',
  offline: '$(debug-disconnect)',
};

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private last: StatusParams = { state: 'starting' };

  constructor(command: string) {
    this.item = vscode.window.createStatusBarItem('aigents.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'aigents';
    this.item.command = command;
    this.update({ state: 'starting', message: 'Starting the aigents-lsp server…' });
    this.item.show();
  }

  get status(): StatusParams {
    return this.last;
  }

  update(status: StatusParams): void {
    this.last = status;
    const state = ICONS[status.state] === undefined ? 'error' : status.state;
    const model = status.model || (state === 'offline' ? 'offline' : 'auto');
    this.item.text = `$(sparkle) aigents: ${model}${ICONS[state] ? ' ' + ICONS[state] : ''}`;
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`**aigents** — ${state}\n\n`);
    if (status.provider) {
      tooltip.appendMarkdown(`Provider: \`${status.provider}\`\n\n`);
    }
    tooltip.appendMarkdown(`Model: \`${status.model || 'picked by the server'}\`\n\n`);
    if (status.message) {
      tooltip.appendText(status.message);
      tooltip.appendMarkdown('\n\n');
    }
    tooltip.appendMarkdown('Click to select a model.');
    this.item.tooltip = tooltip;
    this.item.backgroundColor =
      state === 'error'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : state === 'offline'
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
