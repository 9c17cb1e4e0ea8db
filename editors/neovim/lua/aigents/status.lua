--- The `aigents/status` notification: `{state, provider, model, message}` per client.
local M = {}

---@class aigents.Status
---@field state "starting"|"ready"|"busy"|"error"|"offline"
---@field provider? string
---@field model? string
---@field message? string

---@type table<integer, aigents.Status>
M.by_client = {}

---@param client_id integer
---@param status aigents.Status
function M.on_status(client_id, status)
  if type(status) ~= 'table' then
    return
  end
  M.by_client[client_id] = status
  vim.schedule(function()
    vim.cmd.redrawstatus({ bang = true })
    vim.api.nvim_exec_autocmds('User', { pattern = 'AigentsStatus', data = status, modeline = false })
  end)
end

--- The status of the aigents client of a buffer (or of any running one).
---@param bufnr? integer
---@return aigents.Status?, vim.lsp.Client?
function M.current(bufnr)
  local client = require('aigents').client(bufnr or vim.api.nvim_get_current_buf())
  if not client then
    return nil, nil
  end
  return M.by_client[client.id] or { state = 'starting' }, client
end

--- "aigents: ready (model)" / "aigents: error" / "" when no server runs for the buffer.
---@return string
function M.statusline()
  local status = M.current()
  if not status then
    return ''
  end
  local text = 'aigents: ' .. (status.state or '?')
  if status.model and status.model ~= '' then
    text = text .. ' (' .. status.model .. ')'
  end
  return text
end

--- A one-paragraph description for :AigentsStatus.
---@return string
function M.describe()
  local status, client = M.current()
  if not status or not client then
    return 'aigents: no server running for this buffer (is aigents-lsp installed? see :checkhealth aigents)'
  end
  local lines = {
    ('aigents: %s'):format(status.state or '?'),
    ('  provider: %s'):format(status.provider or '?'),
    ('  model:    %s'):format(status.model or '?'),
    ('  client:   %d (%s)'):format(client.id, client.offset_encoding),
  }
  if status.message and status.message ~= '' then
    lines[#lines + 1] = '  message:  ' .. status.message
  end
  return table.concat(lines, '\n')
end

return M
