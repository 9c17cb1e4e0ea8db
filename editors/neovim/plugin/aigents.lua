-- aigents-lsp for Neovim 0.11+: user commands and highlights. The server starts after
-- require('aigents').setup{} (or vim.lsp.enable('aigents') with lsp/aigents.lua alone).
if vim.g.loaded_aigents then
  return
end
vim.g.loaded_aigents = true

if vim.fn.has('nvim-0.11') == 0 then
  vim.notify_once('aigents: Neovim 0.11 or newer is required', vim.log.levels.WARN)
  return
end

require('aigents.commands').create()
require('aigents.ghost').define_highlight()
vim.api.nvim_create_autocmd('ColorScheme', {
  group = vim.api.nvim_create_augroup('aigents.highlight', { clear = true }),
  callback = function()
    require('aigents.ghost').define_highlight()
  end,
})
