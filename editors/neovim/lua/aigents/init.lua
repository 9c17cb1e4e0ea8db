--- aigents-lsp for Neovim: `require('aigents').setup{}`.
local config = require('aigents.config')

local M = {}

M.NAME = 'aigents'

--- The running aigents client of a buffer (or of any buffer).
---@param bufnr? integer
---@return vim.lsp.Client?
function M.client(bufnr)
  local clients = vim.lsp.get_clients({ name = M.NAME, bufnr = bufnr })
  if #clients == 0 and bufnr then
    clients = vim.lsp.get_clients({ name = M.NAME })
  end
  return clients[1]
end

--- The `vim.lsp.Config` overrides derived from the options.
---@param opts aigents.Options
---@return vim.lsp.Config
local function lsp_overrides(opts)
  local overrides = {} ---@type vim.lsp.Config
  if opts.cmd then
    overrides.cmd = opts.cmd
  end
  if opts.filetypes then
    overrides.filetypes = opts.filetypes
  end
  local settings = opts.settings or {}
  if next(settings) ~= nil then
    overrides.settings = { aigents = settings }
    overrides.init_options = settings
  end
  if not opts.ghost_text then
    -- null, not nil: vim.lsp.config merges, and lsp/aigents.lua adds the capability;
    -- without it the server offers one completion item instead of ghost text
    overrides.capabilities = { textDocument = { inlineCompletion = vim.NIL } }
  end
  return overrides
end

---@param client vim.lsp.Client
---@param bufnr integer
local function on_attach(client, bufnr)
  local opts = config.options
  if opts.ghost_text then
    require('aigents.ghost').attach(client, bufnr)
  else
    require('aigents.items').enable(client, bufnr)
  end
  require('aigents.nextedit').attach(client, bufnr)
end

---@param opts? aigents.Options
function M.setup(opts)
  config.set(opts)
  local options = config.options
  vim.lsp.config(M.NAME, lsp_overrides(options))
  local group = vim.api.nvim_create_augroup('aigents', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.NAME then
        on_attach(client, args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.NAME then
        require('aigents.ghost').detach(args.buf)
        require('aigents.nextedit').detach(args.buf)
      end
    end,
  })
  require('aigents.ghost').define_highlight()
  require('aigents.nextedit').define_highlight()
  vim.lsp.enable(M.NAME)
end

--- A statusline component: "aigents: ready (model)", "" when no server runs.
---@return string
function M.statusline()
  return require('aigents.status').statusline()
end

return M
