--- Next-edit suggestions (`textDocument/copilotInlineEdit`), shown with extmarks: the text the
--- edit removes is marked, the new text follows it as virtual text (lines). After a pause in
--- editing (insert or normal mode) the server is asked; in normal mode the accept key applies
--- the edit (only to the buffer version it was made for) and the dismiss key drops it. Shown,
--- accepted and dismissed are reported to the server.
local config = require('aigents.config')
local triggers = require('aigents.triggers')

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('aigents.nextedit')
M.ns = ns
local METHOD = 'textDocument/copilotInlineEdit'

---@class aigents.NextEdit
---@field edit table the server's edit {text, textDocument, range, command}
---@field client_id integer

---@type table<integer, {client_id: integer, timer?: uv.uv_timer_t, shown?: aigents.NextEdit, request?: integer, group: integer}>
local buffers = {}

function M.define_highlight()
  api.nvim_set_hl(0, 'AigentsNextEditDelete', { link = 'DiffDelete', default = true })
  api.nvim_set_hl(0, 'AigentsNextEditAdd', { link = 'DiffAdd', default = true })
  api.nvim_set_hl(0, 'AigentsNextEditHint', { link = 'Comment', default = true })
end

---@param bufnr integer
---@return aigents.NextEdit?
function M.shown(bufnr)
  local state = buffers[bufnr]
  return state and state.shown
end

local function clear(bufnr)
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
  local state = buffers[bufnr]
  if state then
    state.shown = nil
  end
end

--- Byte columns of an LSP range in the buffer.
local function byte_range(bufnr, client, range)
  local function col(pos)
    local line = api.nvim_buf_get_lines(bufnr, pos.line, pos.line + 1, false)[1] or ''
    return vim.str_byteindex(line, client.offset_encoding, pos.character, false)
  end
  return range.start.line, col(range.start), range['end'].line, col(range['end'])
end

---@param bufnr integer
---@param client vim.lsp.Client
---@param edit table
local function draw(bufnr, client, edit)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local srow, scol, erow, ecol = byte_range(bufnr, client, edit.range)
  if srow ~= erow or scol ~= ecol then
    api.nvim_buf_set_extmark(bufnr, ns, srow, scol, {
      end_row = erow,
      end_col = ecol,
      hl_group = 'AigentsNextEditDelete',
    })
  end
  local lines = vim.split(edit.text, '\n', { plain = true })
  local mark = { virt_text = { { lines[1], 'AigentsNextEditAdd' } }, virt_text_pos = 'inline' }
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      mark.virt_lines[#mark.virt_lines + 1] = { { lines[i], 'AigentsNextEditAdd' } }
    end
  end
  api.nvim_buf_set_extmark(bufnr, ns, erow, ecol, mark)
  -- A jump hint on the cursor's line when the edit is off screen.
  local top, bottom = vim.fn.line('w0') - 1, vim.fn.line('w$') - 1
  if srow < top or srow > bottom then
    local row = api.nvim_win_get_cursor(0)[1] - 1
    api.nvim_buf_set_extmark(bufnr, ns, row, 0, {
      virt_text = { { ('  next edit: line %d (%s)'):format(srow + 1, config.options.next_edit_accept_key), 'AigentsNextEditHint' } },
      virt_text_pos = 'eol',
    })
  end
end

local function execute(client, bufnr, command, args)
  client:request('workspace/executeCommand', { command = command, arguments = args }, function() end, bufnr)
end

--- Ask the server for the next edit at the cursor now.
---@param bufnr? integer
function M.request(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state or api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client then
    return
  end
  if state.request then
    client:cancel_request(state.request)
    state.request = nil
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local version = vim.lsp.util.buf_versions[bufnr]
  params.textDocument.version = version
  local ok, id = client:request(METHOD, params, function(err, result)
    state.request = nil
    if err or not result or not result.edits or not result.edits[1] then
      return
    end
    local edit = result.edits[1]
    -- An edit for another version of the buffer is never shown.
    if edit.textDocument.version ~= vim.lsp.util.buf_versions[bufnr] then
      return
    end
    state.shown = { edit = edit, client_id = client.id }
    draw(bufnr, client, edit)
    client:notify('textDocument/didShowInlineEdit', { item = { command = edit.command } })
  end, bufnr)
  if ok then
    state.request = id
  end
end

---@param bufnr integer
local function schedule(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  clear(bufnr)
  state.timer = triggers.debounce(state.timer, config.options.next_edit_debounce_ms, function()
    M.request(bufnr)
  end)
end

--- The buffer's shown edit, taken off the screen, and the client it came from.
---@param bufnr? integer
---@return integer bufnr, aigents.NextEdit? shown, vim.lsp.Client? client
local function take(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local shown = M.shown(bufnr)
  if not shown then
    return bufnr, nil, nil
  end
  clear(bufnr)
  return bufnr, shown, vim.lsp.get_client_by_id(shown.client_id)
end

--- Apply the shown edit (if the buffer is still the version it was made for).
---@param bufnr? integer
---@return boolean applied
function M.accept(bufnr)
  local shown, client
  bufnr, shown, client = take(bufnr)
  if not shown then
    return false
  end
  if not client or shown.edit.textDocument.version ~= vim.lsp.util.buf_versions[bufnr] then
    return false
  end
  local edit = shown.edit
  vim.lsp.util.apply_text_edits({ { range = edit.range, newText = edit.text } }, bufnr, client.offset_encoding)
  if edit.command then
    execute(client, bufnr, edit.command.command, edit.command.arguments)
  end
  return true
end

--- Drop the shown edit and tell the server.
---@param bufnr? integer
---@return boolean dismissed
function M.dismiss(bufnr)
  local shown, client
  bufnr, shown, client = take(bufnr)
  if not shown then
    return false
  end
  if client and shown.edit.command then
    execute(client, bufnr, 'aigents.nextEditDismissed', shown.edit.command.arguments)
  end
  return true
end

local function map(bufnr, key, desc, action)
  if not key then
    return
  end
  -- Not an expr mapping: those may not change the buffer (textlock).
  vim.keymap.set('n', key, function()
    if not action(bufnr) then
      api.nvim_feedkeys(api.nvim_replace_termcodes(key, true, false, true), 'n', false)
    end
  end, { buffer = bufnr, desc = desc })
end

---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  if buffers[bufnr] or not config.options.next_edit then
    return
  end
  local group = triggers.autocmds('aigents.nextedit', bufnr, {
    {
      { 'TextChanged', 'TextChangedI' },
      function()
        schedule(bufnr)
      end,
    },
    {
      'BufLeave',
      function()
        M.dismiss(bufnr)
      end,
    },
  })
  buffers[bufnr] = { client_id = client.id, group = group }
  map(bufnr, config.options.next_edit_accept_key, 'aigents: accept the next edit', M.accept)
  map(bufnr, config.options.next_edit_dismiss_key, 'aigents: dismiss the next edit', M.dismiss)
end

---@param bufnr integer
function M.detach(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  triggers.release(state.timer, state.group)
  clear(bufnr)
  buffers[bufnr] = nil
end

return M
