// One webview panel showing markdown results and chat conversations. No scripts of the
// answer ever run: the CSP allows only our own nonce'd scroll script.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';

export interface ChatTurn {
  role: string;
  content: string;
}

export class ResultsPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;

  async showMarkdown(title: string, markdown: string): Promise<void> {
    await this.render(title, await renderMarkdown(markdown));
  }

  async showConversation(conversation: ChatTurn[]): Promise<void> {
    const parts: string[] = [];
    for (const turn of conversation) {
      if (turn.role !== 'user' && turn.role !== 'assistant') {
        continue;
      }
      const who = turn.role === 'user' ? 'You' : 'aigents';
      parts.push(`<section class="turn ${turn.role}"><h4>${who}</h4>${await renderMarkdown(turn.content)}</section>`);
    }
    await this.render('aigents: Chat', parts.join('\n'));
  }

  private async render(title: string, body: string): Promise<void> {
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(
        'aigents.results',
        title,
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true, enableFindWidget: true, localResourceRoots: [] },
      );
      this.panel.onDidDispose(() => (this.panel = undefined));
    }
    this.panel.title = title;
    this.panel.webview.html = page(this.panel.webview, body);
    this.panel.reveal(undefined, true);
  }

  dispose(): void {
    this.panel?.dispose();
  }
}

function page(webview: vscode.Webview, body: string): string {
  const nonce = crypto.randomBytes(16).toString('base64');
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} https: data:`,
    `style-src ${webview.cspSource} 'unsafe-inline'`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<style>
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); line-height: 1.5; }
  pre { background: var(--vscode-textCodeBlock-background); padding: 8px; overflow-x: auto; }
  code { font-family: var(--vscode-editor-font-family); }
  .turn { border-bottom: 1px solid var(--vscode-panel-border); padding-bottom: 8px; }
  .turn.user h4 { color: var(--vscode-textLink-foreground); }
</style></head>
<body>${body}
<script nonce="${nonce}">window.scrollTo(0, document.body.scrollHeight);</script>
</body></html>`;
}

/** VS Code's own markdown renderer when present, else the small one below. */
export async function renderMarkdown(markdown: string): Promise<string> {
  try {
    const html = await vscode.commands.executeCommand<string>('markdown.api.render', markdown);
    if (typeof html === 'string') {
      return html;
    }
  } catch {
    // The built-in markdown extension is disabled: fall through.
  }
  return renderMarkdownSafely(markdown);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function inline(text: string): string {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, '$1<em>$2</em>');
}

/** Code fences, headings, lists and paragraphs; everything else is escaped text. */
export function renderMarkdownSafely(markdown: string): string {
  const out: string[] = [];
  const lines = markdown.replace(/\r\n/g, '\n').split('\n');
  let paragraph: string[] = [];
  let list: string[] = [];
  const flush = (): void => {
    if (paragraph.length) out.push(`<p>${paragraph.map(inline).join('<br>')}</p>`);
    if (list.length) out.push(`<ul>${list.map((item) => `<li>${inline(item)}</li>`).join('')}</ul>`);
    paragraph = [];
    list = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)/.exec(line);
    if (fence) {
      flush();
      const code: string[] = [];
      for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence[1]); i++) {
        code.push(lines[i]);
      }
      out.push(`<pre><code>${escapeHtml(code.join('\n'))}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^\s*(?:[-*+]|\d+\.)\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`);
    } else if (item) {
      if (paragraph.length) flush();
      list.push(item[1]);
    } else if (line.trim() === '') {
      flush();
    } else {
      if (list.length) flush();
      paragraph.push(line);
    }
  }
  flush();
  return out.join('\n');
}
