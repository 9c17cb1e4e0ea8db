--- Downloading a model in LM Studio from Neovim (`aigents.downloadModel`), with its progress
--- echoed as the server reports it ($/progress), and the load configuration `:AigentsModel`
--- takes (`ctx=16384 flash=on gpu=off ttl=600`).
local api = vim.api

local M = {}

--- The progress messages of downloads seen so far ("title: message"), newest last.
---@type string[]
M.seen = {}

local watching = false

--- Echo the server's download progress (Neovim keeps $/progress in vim.lsp.status() but
--- shows nothing by itself).
local function watch()
  if watching then
    return
  end
  watching = true
  api.nvim_create_autocmd('LspProgress', {
    group = api.nvim_create_augroup('aigents_download_progress', { clear = true }),
    callback = function(ev)
      local data = ev.data or {}
      local client = vim.lsp.get_client_by_id(data.client_id or -1)
      local value = data.params and data.params.value or {}
      if not client or client.name ~= require('aigents').NAME then
        return
      end
      if value.kind == 'begin' then
        M.titles = M.titles or {}
        M.titles[data.params.token] = value.title
      end
      local title = M.titles and M.titles[data.params.token] or ''
      if not title:find('^aigents: downloading') then
        return
      end
      local text = ('%s: %s'):format(title, value.message or value.kind)
      if value.percentage then
        text = ('%s [%d%%]'):format(text, value.percentage)
      end
      table.insert(M.seen, text)
      api.nvim_echo({ { text } }, false, {})
    end,
  })
end

--- `ID[@QUANT]` -> { model = ID, quantization = QUANT? } (a quantization has no `/`).
---@param spec string
---@return table
function M.target(spec)
  local model, quant = spec:match('^(.+)@([%w_.%-]+)$')
  if model and not quant:find('/') then
    return { model = model, quantization = quant }
  end
  return { model = spec }
end

local CONFIG_KEYS = {
  ctx = 'contextLength',
  context = 'contextLength',
  flash = 'flashAttention',
  gpu = 'gpuOffload',
  ttl = 'ttl',
}

--- `ctx=16384 flash=on gpu=off ttl=600` -> the load configuration of `aigents.selectModel`;
--- nil and a message for a word it does not know.
---@param words string[]
---@return table?, string?
function M.load_config(words)
  local config = {}
  for _, word in ipairs(words) do
    local key, value = word:match('^(%w+)=(%S+)$')
    local name = key and CONFIG_KEYS[key]
    if not name then
      return nil, ('%q is not ctx=N, flash=on|off, gpu=on|off or ttl=S'):format(word)
    end
    if name == 'flashAttention' or name == 'gpuOffload' then
      if value ~= 'on' and value ~= 'off' then
        return nil, ('%s is on or off'):format(key)
      end
      config[name] = value == 'on'
    else
      local n = tonumber(value)
      if not n or n ~= math.floor(n) then
        return nil, ('%s is a whole number'):format(key)
      end
      config[name] = n
    end
  end
  return config
end

--- Download `target` ({model, quantization?}); `on_done(result)` once LM Studio has it.
---@param target table
---@param on_done? fun(result: table)
function M.download(target, on_done)
  local client = require('aigents').client(api.nvim_get_current_buf())
  if not client then
    vim.notify('aigents: downloading needs the running server (and LM Studio 0.4+)', vim.log.levels.WARN)
    return
  end
  watch()
  vim.notify('aigents: downloading ' .. target.model .. (target.quantization and ('@' .. target.quantization) or ''))
  local params = { command = 'aigents.downloadModel', arguments = { target } }
  client:request('workspace/executeCommand', params, function(err, result)
    if err or type(result) ~= 'table' then
      vim.notify('aigents: ' .. (err and err.message or 'no answer from aigents.downloadModel'), vim.log.levels.ERROR)
      return
    end
    local what = result.status == 'already_downloaded' and 'already downloaded' or 'downloaded'
    vim.notify(('aigents: %s %s (listed as %s)'):format(what, result.model, result.listedAs or result.model))
    if on_done then
      on_done(result)
    end
  end)
end

return M
