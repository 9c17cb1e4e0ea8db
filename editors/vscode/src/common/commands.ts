// Palette commands: each asks what it needs, runs the server's `aigents.*` command with
// `show: false` and renders the answer in the results panel.
import * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient } from 'vscode-languageclient/node';
import { ChatTurn, ResultsPanel } from './panel';

/** The result documented in docs/commands.md. */
export interface CommandResult {
  markdown?: string;
  applied?: boolean | null;
  conversation?: ChatTurn[];
  model?: string;
  file?: string;
}

export type ClientProvider = () => LanguageClient | undefined;

export class AigentsCommands {
  private conversation: ChatTurn[] = [];
  private inFlight = 0;

  constructor(
    private readonly client: ClientProvider,
    private readonly panel: ResultsPanel,
  ) {}

  register(): vscode.Disposable[] {
    const editor = (run: (e: vscode.TextEditor) => Promise<void>) => async () => {
      const active = vscode.window.activeTextEditor;
      if (!active) {
        void vscode.window.showInformationMessage('aigents: open a file and select some code first.');
        return;
      }
      await run(active);
    };
    return [
      vscode.commands.registerCommand('aigents.editWithInstruction', editor((e) => this.edit(e))),
      vscode.commands.registerCommand('aigents.fixDiagnostics', editor((e) => this.fix(e))),
      vscode.commands.registerCommand('aigents.addDocstring', editor((e) => this.simple(e, 'docstring', 'Docstring'))),
      vscode.commands.registerCommand('aigents.generateTests', editor((e) => this.simple(e, 'tests', 'Tests'))),
      vscode.commands.registerCommand('aigents.explainSelection', editor((e) => this.simple(e, 'explain', 'Explain'))),
      vscode.commands.registerCommand('aigents.openChat', () => this.chat(false)),
      vscode.commands.registerCommand('aigents.newChat', () => this.chat(true)),
      vscode.commands.registerCommand('aigents.cancelAll', () => this.run('cancel', 'Cancel', {})),
    ];
  }

  /** True while one of these palette commands waits for the server (see `handleApplyEdit`). */
  get running(): boolean {
    return this.inFlight > 0;
  }

  private location(editor: vscode.TextEditor): { uri: string; range: unknown } | undefined {
    const client = this.client();
    if (!client) {
      return undefined;
    }
    const c2p = client.code2ProtocolConverter;
    return { uri: c2p.asUri(editor.document.uri), range: c2p.asRange(editor.selection) };
  }

  private async edit(editor: vscode.TextEditor): Promise<void> {
    const instruction = await vscode.window.showInputBox({
      title: 'aigents: Edit with Instruction',
      prompt: editor.selection.isEmpty
        ? "Instruction for the cursor's line (select code to edit more)"
        : 'Instruction for the selection',
      placeHolder: 'e.g. use pathlib instead of os.path',
      ignoreFocusOut: true,
    });
    if (!instruction?.trim()) {
      return;
    }
    await this.run('edit', 'Edit', { ...this.location(editor), instruction: instruction.trim() });
  }

  private async fix(editor: vscode.TextEditor): Promise<void> {
    const client = this.client();
    const selection = editor.selection;
    const lines = new vscode.Range(selection.start.line, 0, selection.end.line, Number.MAX_SAFE_INTEGER);
    // A cursor means the problems on its line.
    const area = selection.isEmpty ? editor.document.validateRange(lines) : selection;
    const diagnostics = vscode.languages
      .getDiagnostics(editor.document.uri)
      .filter((d) => d.range.intersection(area) !== undefined);
    if (!client || diagnostics.length === 0) {
      void vscode.window.showInformationMessage('aigents: no problems in the selection to fix.');
      return;
    }
    const range = diagnostics.reduce((acc, d) => acc.union(d.range), area);
    const c2p = client.code2ProtocolConverter;
    await this.run('fix', 'Fix', {
      uri: c2p.asUri(editor.document.uri),
      range: c2p.asRange(range),
      diagnostics: await c2p.asDiagnostics(diagnostics),
    });
  }

  private async simple(editor: vscode.TextEditor, name: string, title: string): Promise<void> {
    await this.run(name, title, { ...this.location(editor) });
  }

  private async chat(fresh: boolean): Promise<void> {
    if (fresh) {
      this.conversation = [];
    }
    const question = await vscode.window.showInputBox({
      title: this.conversation.length ? 'aigents: Chat (continuing)' : 'aigents: Chat',
      prompt: 'Ask about the selection, the workspace or anything else',
      ignoreFocusOut: true,
    });
    if (!question?.trim()) {
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const about = editor && !editor.selection.isEmpty ? this.location(editor) : undefined;
    const argument: Record<string, unknown> = { question: question.trim(), ...about };
    if (this.conversation.length) {
      argument.conversation = this.conversation;
    }
    // Show the question at once; the answer replaces the pending view.
    await this.panel.showConversation([...this.conversation, { role: 'user', content: question }]);
    const result = await this.request('chat', 'Chat', argument);
    if (!result) {
      return;
    }
    this.conversation = result.conversation ?? [
      ...this.conversation,
      { role: 'user', content: question },
      { role: 'assistant', content: result.markdown ?? '' },
    ];
    await this.panel.showConversation(this.conversation);
  }

  private async run(name: string, title: string, argument: Record<string, unknown>): Promise<void> {
    const result = await this.request(name, title, argument);
    if (!result) {
      return;
    }
    if (result.file) {
      await vscode.window.showTextDocument(vscode.Uri.file(result.file), { preview: false });
    }
    if (result.markdown) {
      const model = result.model ? ` (${result.model})` : '';
      await this.panel.showMarkdown(`aigents: ${title}${model}`, result.markdown);
    }
  }

  /** `workspace/executeCommand` with a cancellable progress notification. */
  private async request(
    name: string,
    title: string,
    argument: Record<string, unknown>,
  ): Promise<CommandResult | undefined> {
    const client = this.client();
    if (!client || !client.isRunning()) {
      void vscode.window.showErrorMessage('aigents: the server is not running (see "aigents: Show Output").');
      return undefined;
    }
    const command = `aigents.${name}`;
    this.inFlight += 1;
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `aigents: ${title}…`, cancellable: true },
        (_progress, token) =>
          client.sendRequest(
            ExecuteCommandRequest.type,
            { command, arguments: [{ ...argument, show: false }] },
            token,
          ) as Promise<CommandResult | undefined>,
      );
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === -32800) {
        return undefined; // cancelled by the user
      }
      const message = error instanceof Error ? error.message : String(error);
      client.error(`${command} failed`, error, false);
      void vscode.window.showErrorMessage(`aigents: ${title} failed: ${message}`);
      return undefined;
    } finally {
      this.inFlight -= 1;
    }
  }
}
