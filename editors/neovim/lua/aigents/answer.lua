--- Markdown answers (explain, chat, edits not applied) in a split or a float.
local config = require('aigents.config')

local M = {}

local api = vim.api

---@type table<string, {buf: integer?, win: integer?}>
local views = {}

---@param kind string
---@return integer
local function buffer(kind)
  local view = views[kind] or {}
  views[kind] = view
  if view.buf and api.nvim_buf_is_valid(view.buf) then
    return view.buf
  end
  -- a scratch (nofile) buffer: the language servers never attach to it
  view.buf = api.nvim_create_buf(false, true)
  pcall(api.nvim_buf_set_name, view.buf, 'aigents://' .. kind)
  vim.bo[view.buf].bufhidden = 'hide'
  vim.bo[view.buf].filetype = 'markdown'
  return view.buf
end

---@param kind string
---@param buf integer
---@param title string
local function window(kind, buf, title)
  local view = views[kind]
  if view.win and api.nvim_win_is_valid(view.win) and api.nvim_win_get_buf(view.win) == buf then
    return view.win
  end
  local style = config.options.answer_window
  if style == 'float' then
    local width = math.min(100, math.floor(vim.o.columns * 0.8))
    local height = math.min(30, math.floor(vim.o.lines * 0.7))
    view.win = api.nvim_open_win(buf, false, {
      relative = 'editor',
      width = width,
      height = height,
      row = math.floor((vim.o.lines - height) / 2),
      col = math.floor((vim.o.columns - width) / 2),
      border = 'rounded',
      title = title,
      style = 'minimal',
    })
  else
    view.win = api.nvim_open_win(buf, false, {
      split = style == 'vsplit' and 'right' or 'below',
      win = -1,
    })
  end
  vim.wo[view.win].wrap = true
  vim.wo[view.win].linebreak = true
  vim.wo[view.win].conceallevel = 2
  return view.win
end

--- Show `markdown` in the answer window of `kind` ("answer" or "chat"); returns the buffer.
---@param title string
---@param markdown string
---@param kind? string
---@return integer
function M.show(title, markdown, kind)
  kind = kind or 'answer'
  local buf = buffer(kind)
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(markdown, '\n', { plain = true }))
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  local win = window(kind, buf, title)
  -- a chat scrolls to the newest answer, an answer starts at its top
  api.nvim_win_set_cursor(win, { kind == 'chat' and api.nvim_buf_line_count(buf) or 1, 0 })
  return buf
end

--- The buffer of an answer kind, if shown once.
---@param kind? string
---@return integer?
function M.buffer(kind)
  local view = views[kind or 'answer']
  return view and view.buf
end

return M
