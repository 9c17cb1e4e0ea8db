--- Ghost text. Neovim 0.12+: `vim.lsp.inline_completion`. Neovim 0.11: our own extmarks,
--- filled by `textDocument/inlineCompletion` requests sent after a pause in typing.
local config = require('aigents.config')
local triggers = require('aigents.triggers')

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('aigents.ghost')
-- 0.12+: Neovim draws inline completion itself (early 0.12 builds without enable(): ours)
local native = vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
M.native = native
local TRIGGER_AUTOMATIC = 2 -- lsp.InlineCompletionTriggerKind.Automatic

M.ns = ns

---@class aigents.Ghost
---@field row integer 0-based line of the cursor the suggestion continues
---@field col integer byte column of that cursor
---@field text string what is left to insert
---@field item table the lsp.InlineCompletionItem
---@field client_id integer

---@class aigents.GhostBuffer
---@field client_id integer
---@field ghost? aigents.Ghost
---@field timer? uv.uv_timer_t
---@field request? {client_id: integer, id: integer}
---@field group integer

---@type table<integer, aigents.GhostBuffer>
local buffers = {}

function M.define_highlight()
  api.nvim_set_hl(0, 'AigentsGhost', { link = 'Comment', default = true })
end

---@return integer row 0-based, integer col byte
local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

---@param bufnr integer
---@param row integer
---@return string
local function line_at(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

---@param bufnr integer
---@param ghost aigents.Ghost
local function draw(bufnr, ghost)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local spaces = string.rep(' ', vim.bo[bufnr].tabstop)
  local lines = vim.split((ghost.text:gsub('\t', spaces)), '\n', { plain = true })
  local mark = {
    virt_text = { { lines[1], 'AigentsGhost' } },
    virt_text_pos = 'inline',
    hl_mode = 'combine',
  }
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      mark.virt_lines[#mark.virt_lines + 1] = { { lines[i], 'AigentsGhost' } }
    end
  end
  api.nvim_buf_set_extmark(bufnr, ns, ghost.row, ghost.col, mark)
end

--- Stop the debounce timer and cancel the request in flight.
---@param bufnr integer
local function cancel(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  if state.timer then
    state.timer:stop()
  end
  if state.request then
    local client = vim.lsp.get_client_by_id(state.request.client_id)
    if client then
      client:cancel_request(state.request.id)
    end
    state.request = nil
  end
end

--- Remove the ghost text of a buffer.
---@param bufnr? integer
function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if state then
    state.ghost = nil
  end
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

--- Whether ghost text is shown in the buffer.
---@param bufnr? integer
function M.visible(bufnr)
  local state = buffers[bufnr or api.nvim_get_current_buf()]
  return state ~= nil and state.ghost ~= nil
end

--- The text still to be inserted, for tests and statuslines.
---@param bufnr? integer
---@return string?
function M.text(bufnr)
  local state = buffers[bufnr or api.nvim_get_current_buf()]
  return state and state.ghost and state.ghost.text
end

--- Keep the ghost text while the user types what it suggests; false when it no longer fits.
---@param bufnr integer
---@param ghost aigents.Ghost
---@return boolean
local function follow(bufnr, ghost)
  local row, col = cursor()
  if row ~= ghost.row or col < ghost.col then
    return false
  end
  local typed = line_at(bufnr, row):sub(ghost.col + 1, col)
  if typed == '' then
    return col == ghost.col
  end
  if ghost.text:sub(1, #typed) ~= typed or #typed >= #ghost.text then
    return false
  end
  ghost.text = ghost.text:sub(#typed + 1)
  ghost.col = col
  return true
end

--- The part of an item to show at the cursor (row, col), nil if it does not fit there.
---@param bufnr integer
---@param client vim.lsp.Client
---@param item table
---@param row integer
---@param col integer
---@return string?
local function suggestion_at(bufnr, client, item, row, col)
  local text = item.insertText
  if type(text) == 'table' then -- a snippet StringValue: shown and inserted as plain text
    text = text.value
  end
  if type(text) ~= 'string' or text == '' then
    return nil
  end
  local range = item.range
  if range and range.start.line == row then
    local line = line_at(bufnr, row)
    local start = vim.str_byteindex(line, client.offset_encoding, range.start.character, false)
    if start < col then -- the item repeats what is already typed
      local typed = line:sub(start + 1, col)
      if text:sub(1, #typed) ~= typed then
        return nil
      end
      text = text:sub(#typed + 1)
    end
  end
  return text ~= '' and text or nil
end

--- Ask the server for ghost text at the cursor now.
---@param bufnr? integer
function M.request(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state or api.nvim_get_current_buf() ~= bufnr or not in_insert_mode() then
    return
  end
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client then
    return
  end
  cancel(bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@diagnostic disable-next-line: inject-field
  params.context = { triggerKind = TRIGGER_AUTOMATIC }
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local row, col = cursor()
  local id ---@type integer?
  local ok
  ok, id = client:request('textDocument/inlineCompletion', params, function(err, result)
    if state.request and state.request.id == id then
      state.request = nil
    end
    if err or not result or not api.nvim_buf_is_valid(bufnr) then
      return
    end
    -- never show a suggestion for another version or place
    local now_row, now_col = cursor()
    if
      api.nvim_get_current_buf() ~= bufnr
      or api.nvim_buf_get_changedtick(bufnr) ~= tick
      or now_row ~= row
      or now_col ~= col
      or not in_insert_mode()
    then
      return
    end
    local items = result.items or result
    local item = items[1]
    local text = item and suggestion_at(bufnr, client, item, row, col)
    if not text then
      return
    end
    state.ghost = { row = row, col = col, text = text, item = item, client_id = client.id }
    draw(bufnr, state.ghost)
  end, bufnr)
  if ok and id then
    state.request = { client_id = client.id, id = id }
  end
end

---@param bufnr integer
local function schedule_request(bufnr)
  local state = buffers[bufnr]
  cancel(bufnr)
  state.timer = triggers.debounce(state.timer, config.options.debounce_ms, function()
    M.request(bufnr)
  end)
end

---@param bufnr integer
local function on_typing(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  if state.ghost and follow(bufnr, state.ghost) then
    draw(bufnr, state.ghost)
    return
  end
  M.dismiss(bufnr)
  schedule_request(bufnr)
end

---@param text string
---@param how "all"|"word"|"line"
---@return string
local function part_of(text, how)
  if how == 'word' then
    return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or text
  elseif how == 'line' then
    local from = text:sub(1, 1) == '\n' and 2 or 1
    local newline = text:find('\n', from, true)
    return newline and text:sub(1, newline - 1) or text
  end
  return text
end

---@param text string
local function insert_at_cursor(bufnr, text)
  local row, col = cursor()
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local last_col = #lines == 1 and col + #lines[1] or #lines[#lines]
  api.nvim_win_set_cursor(0, { row + #lines, last_col })
end

--- Insert all (or the next word / line) of the ghost text. false when none is shown.
---@param how? "all"|"word"|"line"
---@param bufnr? integer
---@return boolean
function M.accept(how, bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if native then
    if how ~= nil and how ~= 'all' then
      return false
    end
    local tick = api.nvim_buf_get_changedtick(bufnr)
    local accepted = vim.lsp.inline_completion.get({ bufnr = bufnr })
    if accepted == nil then -- early 0.12 builds return nothing: an accept changes the buffer
      return api.nvim_buf_get_changedtick(bufnr) ~= tick
    end
    return accepted == true
  end
  local state = buffers[bufnr]
  local ghost = state and state.ghost
  if not ghost then
    return false
  end
  local row, col = cursor()
  if row ~= ghost.row or col ~= ghost.col then
    M.dismiss(bufnr)
    return false
  end
  cancel(bufnr)
  local part = part_of(ghost.text, how or 'all')
  ghost.text = ghost.text:sub(#part + 1)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  insert_at_cursor(bufnr, part)
  if ghost.text ~= '' then
    ghost.row, ghost.col = cursor()
    draw(bufnr, ghost)
    return true
  end
  state.ghost = nil
  local client = vim.lsp.get_client_by_id(ghost.client_id)
  if client and ghost.item.command then -- aigents.completionAccepted: counts acceptances
    client:exec_cmd(ghost.item.command, { bufnr = bufnr }, function() end)
  end
  return true
end

--- Feed what `key` did before we mapped it (the mapping it replaced, or the key itself).
---@param key string
---@param previous table maparg() of the key before our mapping
local function fallback(key, previous)
  if previous.callback then
    local keys = previous.callback()
    if previous.expr == 1 and type(keys) == 'string' and keys ~= '' then
      local mode = previous.noremap == 1 and 'in' or 'im'
      api.nvim_feedkeys(vim.keycode(keys), mode, false)
    end
    return
  end
  if previous.rhs and previous.rhs ~= '' then
    local keys = previous.expr == 1 and api.nvim_eval(previous.rhs) or previous.rhs
    api.nvim_feedkeys(vim.keycode(keys), previous.noremap == 1 and 'in' or 'im', false)
    return
  end
  api.nvim_feedkeys(vim.keycode(key), 'in', false)
end

---@param bufnr integer
---@param key string|false|nil
---@param desc string
---@param action fun(): boolean
local function map(bufnr, key, desc, action)
  if not key or key == '' then
    return
  end
  local previous = vim.fn.maparg(key, 'i', false, true)
  vim.keymap.set('i', key, function()
    if not action() then
      fallback(key, previous)
    end
  end, { buffer = bufnr, desc = desc })
end

---@param bufnr integer
local function map_keys(bufnr)
  local opts = config.options
  map(bufnr, opts.accept_key, 'aigents: accept the suggestion', function()
    return M.accept('all', bufnr)
  end)
  if native then
    return
  end
  map(bufnr, opts.accept_word_key, 'aigents: accept the next word', function()
    return M.accept('word', bufnr)
  end)
  map(bufnr, opts.accept_line_key, 'aigents: accept the next line', function()
    return M.accept('line', bufnr)
  end)
  map(bufnr, opts.dismiss_key, 'aigents: dismiss the suggestion', function()
    if not M.visible(bufnr) then
      return false
    end
    cancel(bufnr)
    M.dismiss(bufnr)
    return true
  end)
end

--- Start ghost text for a buffer the client attached to.
---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  if buffers[bufnr] then
    return
  end
  if native then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    buffers[bufnr] = { client_id = client.id, group = 0 }
    map_keys(bufnr)
    return
  end
  if not (client.server_capabilities or {}).inlineCompletionProvider then
    -- the server chose completion items (setting completion_mode): use them
    require('aigents.items').enable(client, bufnr)
    return
  end
  local group = triggers.autocmds('aigents.ghost', bufnr, {
    {
      { 'TextChangedI', 'CursorMovedI' },
      function()
        on_typing(bufnr)
      end,
    },
    {
      { 'InsertLeave', 'BufLeave' },
      function()
        cancel(bufnr)
        M.dismiss(bufnr)
      end,
    },
  })
  buffers[bufnr] = { client_id = client.id, group = group }
  map_keys(bufnr)
end

--- Stop ghost text in a buffer (its client detached).
---@param bufnr integer
function M.detach(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  cancel(bufnr)
  M.dismiss(bufnr)
  triggers.release(state.timer, state.group)
  if native then
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
  end
  buffers[bufnr] = nil
end

return M
