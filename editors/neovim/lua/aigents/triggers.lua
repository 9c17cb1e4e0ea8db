--- When ghost text (ghost.lua) and next edits (nextedit.lua) ask the server: a buffer's
--- autocmds in an augroup of their own, and a debounce timer restarted on every change.
local M = {}

local api = vim.api

--- An augroup `<name>.<bufnr>` with one buffer-local autocmd per `{events, handler}` pair.
---@param name string
---@param bufnr integer
---@param handlers {[1]: string|string[], [2]: fun()}[]
---@return integer group
function M.autocmds(name, bufnr, handlers)
  local group = api.nvim_create_augroup(name .. '.' .. bufnr, { clear = true })
  for _, handler in ipairs(handlers) do
    api.nvim_create_autocmd(handler[1], {
      group = group,
      buffer = bufnr,
      -- not the handler itself: a callback that returns true deletes its autocmd
      callback = function()
        handler[2]()
      end,
    })
  end
  return group
end

--- Run `fn` once, `ms` from now (on the main loop), instead of whatever `timer` had waiting.
---@param timer? uv.uv_timer_t the buffer's timer, created on first use
---@param ms integer
---@param fn fun()
---@return uv.uv_timer_t timer
function M.debounce(timer, ms, fn)
  timer = timer or vim.uv.new_timer()
  timer:stop()
  timer:start(ms, 0, vim.schedule_wrap(fn))
  return timer
end

--- Stop and close the buffer's timer and delete its augroup (0: none was made).
---@param timer? uv.uv_timer_t
---@param group integer
function M.release(timer, group)
  if timer then
    timer:stop()
    timer:close()
  end
  if group ~= 0 then
    pcall(api.nvim_del_augroup_by_id, group)
  end
end

return M
