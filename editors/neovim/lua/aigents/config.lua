--- Plugin options: defaults and the values given to `setup()`.
local M = {}

---@class aigents.Options
---@field cmd? string[] command that starts the server
---@field filetypes? string[] nil: every filetype
---@field settings? table server settings (initializationOptions and section "aigents")
---@field ghost_text? boolean false: no ghost text, the server offers completion items instead
---@field completion_autotrigger? boolean with ghost_text=false: open the completion menu as you type
---@field debounce_ms? integer pause in typing before ghost text is requested (Neovim 0.11)
---@field accept_key? string|false
---@field accept_word_key? string|false
---@field accept_line_key? string|false
---@field dismiss_key? string|false
---@field answer_window? "split"|"vsplit"|"float" where explain/chat answers are shown
---@field next_edit? boolean next-edit suggestions (textDocument/copilotInlineEdit)
---@field next_edit_debounce_ms? integer pause in editing before the next edit is asked
---@field next_edit_accept_key? string|false normal mode: apply the shown next edit
---@field next_edit_dismiss_key? string|false normal mode: drop it
M.defaults = {
  cmd = nil,
  filetypes = nil,
  settings = {},
  ghost_text = true,
  completion_autotrigger = false,
  debounce_ms = 75,
  accept_key = '<Tab>',
  accept_word_key = '<M-Right>',
  accept_line_key = '<M-Down>',
  dismiss_key = '<C-]>',
  answer_window = 'split',
  next_edit = true,
  next_edit_debounce_ms = 400,
  next_edit_accept_key = '<Tab>',
  next_edit_dismiss_key = '<Esc>',
}

---@type aigents.Options
M.options = vim.deepcopy(M.defaults)
M.did_setup = false

---@param opts? aigents.Options
function M.set(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  M.did_setup = true
end

return M
