---@brief
---
--- https://github.com/aigents/aigents-lsp
---
--- AI completion (ghost text or one completion item), chat commands and code actions from a
--- local LLM (LM Studio, or the embedded llama.cpp engine).
---
--- Install the server with `pip install aigents-lsp` (or `pip install 'aigents-lsp[embedded]'`).
--- Settings go in `settings.aigents` (see docs/settings.md); they are also sent as
--- `init_options`. `require('aigents').setup{}` adds ghost text on Neovim 0.11, user commands
--- and a statusline component on top of this config.
---
--- The `textDocument.inlineCompletion` capability is what makes the server offer ghost text
--- instead of a completion item: remove it to get classic completion.

---@type vim.lsp.Config
return {
  cmd = { 'aigents-lsp' },
  -- nil: every filetype (the server itself skips ignored and secret files)
  filetypes = nil,
  root_markers = { '.aigents.toml', '.git' },
  capabilities = {
    textDocument = {
      inlineCompletion = { dynamicRegistration = false },
    },
  },
  settings = {
    aigents = vim.empty_dict(),
  },
  handlers = {
    ['aigents/status'] = function(_, result, ctx)
      require('aigents.status').on_status(ctx.client_id, result)
    end,
  },
}
