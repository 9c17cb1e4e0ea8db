// Next-edit suggestions (`textDocument/copilotInlineEdit`, docs/nextedit.md) shown as a diff
// preview at their place: the text the edit removes struck through on a red background, the
// new text after it on a green one, and a jump hint on the cursor's line when the edit is off
// screen. Tab jumps to an off-screen edit, then applies it; Escape dismisses it. Shown,
// accepted and dismissed are reported to the server.
import * as vscode from 'vscode';
import { CancellationTokenSource, LanguageClient } from 'vscode-languageclient/node';

const METHOD = 'textDocument/copilotInlineEdit';
const VISIBLE_CONTEXT = 'aigents.nextEditVisible';
const DELAY_MS = 400; // a pause in editing before the server is asked

interface WireEdit {
  text: string;
  textDocument: { uri: string; version: number };
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  command?: { title: string; command: string; arguments?: unknown[] };
}

interface Shown {
  editor: vscode.TextEditor;
  edit: WireEdit;
  range: vscode.Range;
}

export class NextEdits implements vscode.Disposable {
  private readonly removed = vscode.window.createTextEditorDecorationType({
    backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
    textDecoration: 'line-through',
  });
  private readonly added = vscode.window.createTextEditorDecorationType({});
  private readonly hint = vscode.window.createTextEditorDecorationType({});
  private shown: Shown | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pending: CancellationTokenSource | undefined;

  constructor(private readonly client: () => LanguageClient | undefined) {}

  register(): vscode.Disposable[] {
    return [
      this,
      vscode.commands.registerCommand('aigents.acceptNextEdit', () => this.accept()),
      vscode.commands.registerCommand('aigents.dismissNextEdit', () => this.dismiss()),
      vscode.commands.registerCommand('aigents.requestNextEdit', () => this.request()),
      vscode.workspace.onDidChangeTextDocument((event) => {
        const editor = vscode.window.activeTextEditor;
        if (editor && event.document === editor.document && event.contentChanges.length) {
          this.clear();
          this.schedule();
        }
      }),
      vscode.window.onDidChangeActiveTextEditor(() => this.clear()),
    ];
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.request(), DELAY_MS);
  }

  /** Ask the server for the next edit at the cursor of the active editor. */
  async request(): Promise<void> {
    const client = this.client();
    const editor = vscode.window.activeTextEditor;
    if (!client || !client.isRunning() || !editor) return;
    this.pending?.cancel();
    const source = (this.pending = new CancellationTokenSource());
    const document = editor.document;
    const version = document.version;
    let result: { edits?: WireEdit[] } | undefined;
    try {
      result = await client.sendRequest(
        METHOD,
        {
          textDocument: { uri: client.code2ProtocolConverter.asUri(document.uri), version },
          position: client.code2ProtocolConverter.asPosition(editor.selection.active),
        },
        source.token,
      );
    } catch {
      return; // cancelled, or the server is gone
    }
    const edit = result?.edits?.[0];
    // An edit for another version of the document is never shown.
    if (!edit || source.token.isCancellationRequested || document.version !== version) return;
    if (edit.textDocument.version !== version || vscode.window.activeTextEditor !== editor) return;
    this.show(editor, edit, client);
  }

  private show(editor: vscode.TextEditor, edit: WireEdit, client: LanguageClient): void {
    const range = client.protocol2CodeConverter.asRange(edit.range);
    const inserted = edit.text.replace(/\n/g, ' ⏎ ');
    editor.setDecorations(this.removed, range.isEmpty ? [] : [range]);
    editor.setDecorations(this.added, [
      {
        range: new vscode.Range(range.end, range.end),
        renderOptions: {
          after: {
            contentText: inserted,
            backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground'),
            color: new vscode.ThemeColor('editor.foreground'),
          },
        },
      },
    ]);
    const visible = editor.visibleRanges.some((r) => r.contains(range.start));
    const line = editor.selection.active.line;
    editor.setDecorations(
      this.hint,
      visible
        ? []
        : [
            {
              range: new vscode.Range(line, Number.MAX_SAFE_INTEGER, line, Number.MAX_SAFE_INTEGER),
              renderOptions: {
                after: {
                  contentText: `  ⇥ next edit at line ${range.start.line + 1} (Tab)`,
                  color: new vscode.ThemeColor('editorCodeLens.foreground'),
                },
              },
            },
          ],
    );
    this.shown = { editor, edit, range };
    void vscode.commands.executeCommand('setContext', VISIBLE_CONTEXT, true);
    void client.sendNotification('textDocument/didShowInlineEdit', { item: { command: edit.command } });
  }

  /** Tab: jump to an edit off screen; apply one in view (to the version it was made for). */
  async accept(): Promise<void> {
    const shown = this.shown;
    if (!shown) return;
    const { editor, edit, range } = shown;
    if (!editor.visibleRanges.some((r) => r.contains(range.start))) {
      editor.selection = new vscode.Selection(range.start, range.start);
      editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      editor.setDecorations(this.hint, []);
      return;
    }
    this.clear();
    if (editor.document.version !== edit.textDocument.version) return;
    const applied = await editor.edit((builder) => builder.replace(range, edit.text));
    const client = this.client();
    if (applied && client && edit.command) {
      await client.sendRequest('workspace/executeCommand', {
        command: edit.command.command,
        arguments: edit.command.arguments ?? [],
      });
    }
  }

  /** Escape: drop the edit and tell the server. */
  dismiss(): void {
    const shown = this.shown;
    this.clear();
    const client = this.client();
    if (shown && client && shown.edit.command) {
      void client.sendRequest('workspace/executeCommand', {
        command: 'aigents.nextEditDismissed',
        arguments: shown.edit.command.arguments ?? [],
      });
    }
  }

  private clear(): void {
    const shown = this.shown;
    this.shown = undefined;
    if (shown) {
      for (const type of [this.removed, this.added, this.hint]) shown.editor.setDecorations(type, []);
    }
    void vscode.commands.executeCommand('setContext', VISIBLE_CONTEXT, false);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.pending?.cancel();
    this.removed.dispose();
    this.added.dispose();
    this.hint.dispose();
  }
}
