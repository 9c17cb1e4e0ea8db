--- Classic completion (one item holding the whole suggestion), for `ghost_text = false` or
--- when the server offers no ghost text: Neovim's native LSP completion plus a fix-up.
local M = {}

--- Neovim's completion inserts only the first word of a plain-text item ("a" of "a + b"):
--- once one of our items is chosen, put in the whole suggestion.
---@param client vim.lsp.Client
---@param bufnr integer
local function complete_whole_items(client, bufnr)
  vim.api.nvim_create_autocmd('CompleteDone', {
    group = vim.api.nvim_create_augroup('aigents.items.' .. bufnr, { clear = true }),
    buffer = bufnr,
    callback = function()
      local done = vim.v.completed_item
      local lsp = done and type(done.user_data) == 'table' and done.user_data.nvim
      lsp = lsp and lsp.lsp
      local item = lsp and lsp.completion_item
      if not item or lsp.client_id ~= client.id or item.insertTextFormat == 2 then
        return
      end
      local text = item.textEdit and item.textEdit.newText or item.insertText
      local word = done.word or ''
      if type(text) ~= 'string' or text == word or text:sub(1, #word) ~= word then
        return
      end
      local row, col = unpack(vim.api.nvim_win_get_cursor(0))
      local line = vim.api.nvim_get_current_line()
      if line:sub(col - #word + 1, col) ~= word then
        return
      end
      local lines = vim.split(text:sub(#word + 1), '\n', { plain = true })
      vim.api.nvim_buf_set_text(bufnr, row - 1, col, row - 1, col, lines)
      local last_col = #lines == 1 and col + #lines[1] or #lines[#lines]
      vim.api.nvim_win_set_cursor(0, { row + #lines - 1, last_col })
    end,
  })
end

--- Completion items from the aigents client in this buffer (omnifunc, and as you type when
--- `completion_autotrigger` is set).
---@param client vim.lsp.Client
---@param bufnr integer
function M.enable(client, bufnr)
  if not (client.server_capabilities or {}).completionProvider or not vim.lsp.completion then
    return
  end
  local autotrigger = require('aigents.config').options.completion_autotrigger
  vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = autotrigger })
  complete_whole_items(client, bufnr)
end

return M
