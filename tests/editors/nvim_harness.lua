-- Drives a headless Neovim through a test scenario and writes what it saw to a JSON file.
--
-- The scenario runs in a coroutine whose waits yield to the main loop (vim.defer_fn), so keys
-- given with nvim_input are typed for real: mappings, insert mode and autocommands all run.
local H = { results = { notifications = {} } }

local function finish()
  if H.finished then
    return
  end
  H.finished = true
  local file = assert(io.open(H.results_path, 'w'))
  file:write(vim.json.encode(H.results))
  file:close()
  vim.cmd('qall!')
end

function H.resume()
  local ok, err = coroutine.resume(H.co)
  if not ok then
    H.results.error = debug.traceback(H.co, tostring(err))
    finish()
  elseif coroutine.status(H.co) == 'dead' then
    finish()
  end
end

--- Wait until `condition()` is truthy (returns its value) or `timeout_ms` passed (returns nil).
function H.wait(timeout_ms, condition)
  local deadline = vim.uv.now() + timeout_ms
  while true do
    local ok, value = pcall(condition)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      return nil
    end
    vim.defer_fn(H.resume, 20)
    coroutine.yield()
  end
end

function H.sleep(ms)
  local deadline = vim.uv.now() + ms
  H.wait(ms + 1000, function()
    return vim.uv.now() >= deadline
  end)
end

--- Type keys as a user would (mappings apply).
function H.type(keys)
  vim.api.nvim_input(keys)
  -- one turn of the main loop: it takes the keys before the scenario goes on
  vim.defer_fn(H.resume, 20)
  coroutine.yield()
end

function H.record(name, value)
  H.results[name] = value
end

function H.lines(buf)
  return vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false)
end

--- The attached aigents client of the current buffer, once it is ready.
function H.client()
  return H.wait(20000, function()
    local client = vim.lsp.get_clients({ name = 'aigents', bufnr = 0 })[1]
    return client and client.initialized and client
  end)
end

--- A synchronous workspace/executeCommand (for assertions, not for the plugin under test).
function H.execute(command, argument)
  local client = H.client()
  local done, answer
  client:request('workspace/executeCommand', { command = command, arguments = { argument } }, function(err, result)
    done, answer = true, err and { error = err } or result
  end, 0)
  H.wait(10000, function()
    return done
  end)
  return answer
end

function H.run(scenario_path, results_path, timeout_ms)
  H.results_path = results_path
  local notify = vim.notify
  vim.notify = function(message, level, opts)
    table.insert(H.results.notifications, { message = message, level = level })
    return notify(message, level, opts)
  end
  local scenario = dofile(scenario_path)
  H.co = coroutine.create(function()
    scenario(H)
  end)
  vim.defer_fn(function()
    H.results.error = 'scenario timed out'
    finish()
  end, timeout_ms)
  vim.schedule(H.resume)
end

return H
