--- :checkhealth aigents
local M = {}

function M.check()
  local health = vim.health
  health.start('aigents: Neovim')
  if vim.fn.has('nvim-0.11') == 1 then
    local v = vim.version()
    health.ok(('Neovim %d.%d.%d'):format(v.major, v.minor, v.patch))
  else
    health.error('Neovim 0.11 or newer is required', { 'Upgrade Neovim' })
  end
  if require('aigents.ghost').native then
    health.ok('ghost text: vim.lsp.inline_completion (Neovim 0.12+)')
  else
    health.ok('ghost text: drawn by aigents.nvim with extmarks (Neovim 0.11)')
  end

  health.start('aigents: setup')
  local config = require('aigents.config')
  if config.did_setup then
    health.ok("require('aigents').setup() was called")
  else
    health.warn("require('aigents').setup() was not called", {
      "Add require('aigents').setup{} to your init.lua",
    })
  end

  health.start('aigents: server')
  local resolved = vim.lsp.config.aigents
  local cmd = resolved and resolved.cmd
  if type(cmd) == 'table' and cmd[1] then
    local exe = vim.fn.exepath(cmd[1])
    if exe ~= '' then
      health.ok(('server command: %s (%s)'):format(table.concat(cmd, ' '), exe))
    else
      health.error(('server command not found: %s'):format(cmd[1]), {
        "pip install aigents-lsp (or 'aigents-lsp[embedded]')",
        "or point setup{ cmd = {...} } at the server",
      })
    end
  elseif type(cmd) == 'function' then
    health.ok('server command: a function (not checked)')
  else
    health.error('no server command configured', { "require('aigents').setup{}" })
  end

  local clients = vim.lsp.get_clients({ name = 'aigents' })
  if #clients == 0 then
    health.warn('no aigents-lsp client is running', { 'Open a file in a project to start it' })
    return
  end
  local status = require('aigents.status')
  for _, client in ipairs(clients) do
    local buffers = vim.tbl_keys(client.attached_buffers)
    health.ok(('client %d attached to %d buffer(s), position encoding %s'):format(
      client.id,
      #buffers,
      client.offset_encoding
    ))
    local caps = client.server_capabilities or {}
    if caps.inlineCompletionProvider then
      health.ok('the server offers ghost text (textDocument/inlineCompletion)')
    elseif caps.completionProvider then
      health.ok('the server offers completion items (classic completion)')
    else
      health.warn('the server offers no completion (setting completion_mode = "off"?)')
    end
    local s = status.by_client[client.id]
    if not s then
      health.info('no aigents/status received yet')
    elseif s.state == 'error' or s.state == 'offline' then
      health.warn(('backend %s: %s'):format(s.state, s.message or ''), {
        'Run `aigents-lsp doctor` in a terminal for step-by-step checks',
      })
    else
      health.ok(('backend %s: provider %s, model %s'):format(s.state, s.provider or '?', s.model or '?'))
    end
  end
end

return M
