--- User commands: each one sends a `workspace/executeCommand` with `show = false` and renders
--- the result itself; edits arrive through `workspace/applyEdit`, applied by Neovim.
local config = require('aigents.config')
local answer = require('aigents.answer')

local M = {}

local api = vim.api

---@return vim.lsp.Client?
local function client_or_warn(bufnr)
  local client = require('aigents').client(bufnr)
  if not client then
    vim.notify(
      'aigents: no aigents-lsp client for this buffer (see :checkhealth aigents)',
      vim.log.levels.WARN
    )
  end
  return client
end

--- LSP character offset of byte column `col` on line `row` (0-based).
local function lsp_character(bufnr, row, col, encoding)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  return vim.str_utfindex(line, encoding, math.min(col, #line), false)
end

---@class aigents.CommandRange
---@field range integer 0: no range given, 1 or 2: lines line1..line2
---@field line1 integer
---@field line2 integer

--- The LSP range a command applies to: the visual selection (character-wise if it was), the
--- given lines, or (`cursor_only`) an empty range at the cursor, else the current line.
---@param bufnr integer
---@param encoding string
---@param opts aigents.CommandRange
---@param cursor_only? boolean an empty range: the server takes the function around it
---@return lsp.Range, integer first row, integer last row (0-based)
function M.range(bufnr, encoding, opts, cursor_only)
  local line_count = api.nvim_buf_line_count(bufnr)
  if opts.range == 0 then
    local row, col = unpack(api.nvim_win_get_cursor(0))
    row = row - 1
    if cursor_only then
      local position = { line = row, character = lsp_character(bufnr, row, col, encoding) }
      return { start = position, ['end'] = position }, row, row
    end
    opts = { range = 2, line1 = row + 1, line2 = row + 1 }
  end
  local first, last = opts.line1 - 1, opts.line2 - 1
  local vstart, vend = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  if vim.fn.visualmode() == 'v' and vstart[2] == opts.line1 and vend[2] == opts.line2 then
    local last_line = api.nvim_buf_get_lines(bufnr, last, last + 1, false)[1] or ''
    local end_col = math.min(vend[3], #last_line) -- '> is on the last byte... of its character
    if end_col > 0 and end_col < #last_line then
      end_col = end_col + (vim.str_utf_end(last_line, end_col) or 0)
    end
    return {
      start = { line = first, character = lsp_character(bufnr, first, vstart[3] - 1, encoding) },
      ['end'] = { line = last, character = lsp_character(bufnr, last, end_col, encoding) },
    },
      first,
      last
  end
  local stop ---@type lsp.Position
  if last + 1 < line_count then
    stop = { line = last + 1, character = 0 }
  else
    stop = { line = last, character = lsp_character(bufnr, last, math.huge, encoding) }
  end
  return { start = { line = first, character = 0 }, ['end'] = stop }, first, last
end

--- LSP diagnostics (from any server) on rows first..last.
---@param bufnr integer
---@param first integer
---@param last integer
---@param encoding string
---@return lsp.Diagnostic[]
function M.diagnostics(bufnr, first, last, encoding)
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local end_lnum = d.end_lnum or d.lnum
    if d.lnum <= last and end_lnum >= first then
      local lsp = d.user_data and d.user_data.lsp
      if type(lsp) == 'table' and lsp.range then
        found[#found + 1] = lsp
      else
        found[#found + 1] = {
          range = {
            start = { line = d.lnum, character = lsp_character(bufnr, d.lnum, d.col, encoding) },
            ['end'] = {
              line = end_lnum,
              character = lsp_character(bufnr, end_lnum, d.end_col or d.col, encoding),
            },
          },
          message = d.message,
          source = d.source,
          severity = d.severity,
          code = d.code,
        }
      end
    end
  end
  return found
end

--- Run an aigents.* command; `on_result(result)` on success, errors are notified.
---@param client vim.lsp.Client
---@param bufnr integer
---@param command string
---@param argument table
---@param on_result fun(result: table)
function M.execute(client, bufnr, command, argument, on_result)
  argument.show = false
  client:request('workspace/executeCommand', { command = command, arguments = { argument } }, function(err, result)
    if err then
      if err.code == -32800 then
        vim.notify('aigents: ' .. command .. ' cancelled', vim.log.levels.INFO)
      else
        vim.notify('aigents: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      end
      return
    end
    on_result(type(result) == 'table' and result or {})
  end, bufnr)
end

--- What an editing command reports when it is done.
---@param what string
---@param result table
local function report_edit(what, result)
  local model = result.model and (' (' .. result.model .. ')') or ''
  if result.applied == true then
    vim.notify(('aigents: %s applied%s'):format(what, model), vim.log.levels.INFO)
  else
    vim.notify(('aigents: %s not applied'):format(what), vim.log.levels.WARN)
    if result.markdown and result.markdown ~= '' then
      answer.show('aigents: ' .. what, result.markdown)
    end
  end
end

---@param name "explain"|"edit"|"fix"|"docstring"|"tests"
---@param opts aigents.CommandRange
---@param extra? table more fields of the argument
local function run(name, opts, extra)
  local bufnr = api.nvim_get_current_buf()
  local client = client_or_warn(bufnr)
  if not client then
    return
  end
  local cursor_only = name == 'docstring' or name == 'tests'
  local range, first, last = M.range(bufnr, client.offset_encoding, opts, cursor_only)
  local argument = vim.tbl_extend('force', { uri = vim.uri_from_bufnr(bufnr), range = range }, extra or {})
  if name == 'fix' then
    argument.diagnostics = M.diagnostics(bufnr, first, last, client.offset_encoding)
    if #argument.diagnostics == 0 then
      vim.notify('aigents: no diagnostics to fix here', vim.log.levels.WARN)
      return
    end
  end
  M.execute(client, bufnr, 'aigents.' .. name, argument, function(result)
    if name == 'explain' then
      answer.show('aigents: explain', result.markdown or '')
    elseif name == 'tests' then
      report_edit('tests', result)
      if result.applied and result.file then
        vim.cmd('split ' .. vim.fn.fnameescape(result.file))
      end
    else
      report_edit(name, result)
    end
  end)
end

function M.explain(opts)
  run('explain', opts)
end

function M.edit(opts)
  local function go(instruction)
    run('edit', opts, instruction and instruction ~= '' and { instruction = instruction } or nil)
  end
  if opts.args and opts.args ~= '' then
    return go(opts.args)
  end
  -- keep the range: vim.ui.input may be asynchronous
  local saved = { range = opts.range, line1 = opts.line1, line2 = opts.line2 }
  vim.ui.input({ prompt = 'Edit instruction (empty: choose): ' }, function(input)
    if input ~= nil then
      opts = saved
      go(input)
    end
  end)
end

function M.fix(opts)
  run('fix', opts)
end

function M.docstring(opts)
  run('docstring', opts)
end

function M.tests(opts)
  run('tests', opts)
end

--- The chat so far: what was asked and answered, and the server's conversation to continue.
M.chat_state = { turns = {}, conversation = nil }

local function render_chat()
  local parts = {}
  for _, turn in ipairs(M.chat_state.turns) do
    parts[#parts + 1] = '## You\n\n' .. turn.question .. '\n\n## aigents\n\n' .. (turn.answer or '_…_')
  end
  answer.show('aigents: chat', table.concat(parts, '\n\n'), 'chat')
end

function M.chat(opts)
  if opts.bang then
    M.chat_state = { turns = {}, conversation = nil }
  end
  local bufnr = api.nvim_get_current_buf()
  local client = client_or_warn(bufnr)
  if not client then
    return
  end
  local argument = {}
  if opts.range > 0 and vim.bo[bufnr].buftype == '' then
    argument.uri = vim.uri_from_bufnr(bufnr)
    argument.range = M.range(bufnr, client.offset_encoding, opts)
  end
  local function ask(question)
    if not question or question == '' then
      return
    end
    argument.question = question
    argument.conversation = M.chat_state.conversation
    local turn = { question = question }
    table.insert(M.chat_state.turns, turn)
    render_chat()
    M.execute(client, bufnr, 'aigents.chat', argument, function(result)
      turn.answer = result.markdown or ''
      M.chat_state.conversation = result.conversation
      render_chat()
    end)
  end
  if opts.args and opts.args ~= '' then
    return ask(opts.args)
  end
  vim.ui.input({ prompt = 'Ask aigents: ' }, ask)
end

function M.cancel()
  local client = client_or_warn(api.nvim_get_current_buf())
  if client then
    client:request('workspace/executeCommand', { command = 'aigents.cancel', arguments = { vim.empty_dict() } }, function(_, result)
      vim.notify(('aigents: cancelled %d command(s)'):format(result and result.cancelled or 0))
    end)
  end
end

--- The command line that lists models when no server runs: the server command + `models --json`.
---@return string[]?
local function models_cmd()
  local cmd = config.options.cmd or vim.lsp.config.aigents and vim.lsp.config.aigents.cmd
  if type(cmd) ~= 'table' or #cmd == 0 then
    cmd = { 'aigents-lsp' }
  end
  if vim.fn.executable(cmd[1]) ~= 1 then
    return nil
  end
  return vim.list_extend(vim.deepcopy(cmd), { 'models', '--json' })
end

local TASKS = { completion = true, chat = true, embedding = true, all = true }
local SETTING_FOR = { all = 'model', completion = 'completionModel', chat = 'chatModel', embedding = 'embeddingModel' }

--- Write settings (a `vim.NIL` value removes one) and send them to the servers
--- (workspace/didChangeConfiguration).
---@param values table<string, any>
local function persist(values)
  config.options.settings = config.options.settings or {}
  local function put(section)
    for name, value in pairs(values) do
      section[name] = value ~= vim.NIL and value or nil
    end
    return section
  end
  put(config.options.settings)
  for _, client in ipairs(vim.lsp.get_clients({ name = 'aigents' })) do
    client.settings = client.settings or {}
    local section = type(client.settings.aigents) == 'table' and client.settings.aigents or {}
    client.settings.aigents = put(section)
    client:notify('workspace/didChangeConfiguration', { settings = client.settings })
  end
end

--- Use `model` for `task` (default: every task it can serve). With a server: `aigents.selectModel`
--- (it loads the model in LM Studio, with progress), then the settings it names are kept;
--- without one, the setting alone.
---@param model string
---@param task? string completion|chat|embedding|all
---@param load? table the load configuration ({contextLength, flashAttention, gpuOffload, ttl})
function M.set_model(model, task, load)
  task = task or 'all'
  local client = require('aigents').client(api.nvim_get_current_buf())
  if not client then
    persist({ [SETTING_FOR[task]] = model })
    vim.notify('aigents: model set to ' .. model)
    return
  end
  local arguments = { vim.tbl_extend('force', { model = model, task = task }, load or {}) }
  client:request('workspace/executeCommand', { command = 'aigents.selectModel', arguments = arguments }, function(err, result)
    if err or type(result) ~= 'table' then
      vim.notify('aigents: ' .. (err and err.message or 'no answer from aigents.selectModel'), vim.log.levels.ERROR)
      return
    end
    persist(result.settings or { [SETTING_FOR[task]] = model })
    local tasks = result.tasks or {}
    local what = (#tasks == 1 and tasks[1] ~= 'embedding') and (tasks[1] .. ' model') or 'model'
    local load = type(result.load) == 'table' and (' (loaded in %.1f s)'):format(result.load.seconds) or ''
    -- what LM Studio reads back, for a model just loaded
    local running = load ~= '' and type(result.loadConfig) == 'table' and result.loadConfig.context_length
      and (', context %d'):format(result.loadConfig.context_length) or ''
    vim.notify(('aigents: %s set to %s%s%s'):format(what, result.model or model, load, running))
  end)
end

--- The models as `aigents.listModels` gives them (older CLIs printed a bare array).
local function model_list(value)
  if type(value) ~= 'table' then
    return nil
  end
  return value.models or (vim.islist(value) and value) or nil
end

--- The models, then what the server suggests to download (`suggestions`, LM Studio).
local function choose(models, task, suggestions, load)
  local items = vim.list_extend({}, type(models) == 'table' and models or {})
  for _, s in ipairs(type(suggestions) == 'table' and suggestions or {}) do
    table.insert(items, { suggestion = s })
  end
  if #items == 0 then
    vim.notify('aigents: no models', vim.log.levels.WARN)
    return
  end
  vim.ui.select(items, {
    prompt = 'aigents model' .. (task and (' for ' .. task) or '') .. ':',
    format_item = function(m)
      local s = m.suggestion
      if s then
        return ('download %s %s  [for %s, %.1f GB, %s]'):format(s.name, s.quantization, s.task, s.sizeBytes / 1e9, s.why)
      end
      local used = type(m.usedFor) == 'table' and #m.usedFor > 0 and (', ' .. table.concat(m.usedFor, '+')) or ''
      return ('%s  [%s, %s%s]'):format(m.id, m.type or '?', m.state or '?', used)
    end,
  }, function(choice)
    if choice and choice.suggestion then
      local s = choice.suggestion
      require('aigents.downloads').download(s.download, function(result)
        if TASKS[s.task] then -- next-edit models are not chosen here
          M.set_model(result.listedAs or result.model, task or s.task, load)
        end
      end)
    elseif choice then
      M.set_model(choice.id, task, load)
    end
  end)
end

--- :AigentsModel [id] [task] [ctx=N flash=on|off gpu=on|off ttl=S]: set a model (loaded with
--- that configuration), or pick one from the server's list (or one it suggests to download);
--- :AigentsModel download ID[@QUANT]: download one in LM Studio, with progress.
function M.model(opts)
  local downloads = require('aigents.downloads')
  local args, words = {}, {}
  for _, arg in ipairs(opts and opts.fargs or {}) do
    table.insert(arg:find('=') and words or args, arg)
  end
  if args[1] == 'download' then
    if not args[2] then
      vim.notify('aigents: :AigentsModel download ID[@QUANT]', vim.log.levels.ERROR)
      return
    end
    return downloads.download(downloads.target(args[2]))
  end
  local load, problem = downloads.load_config(words)
  if not load then
    vim.notify('aigents: ' .. problem, vim.log.levels.ERROR)
    return
  end
  local task = args[2] or (args[1] and TASKS[args[1]] and args[1]) or nil
  if task and not TASKS[task] then
    vim.notify('aigents: the task is completion, chat, embedding or all', vim.log.levels.ERROR)
    return
  end
  if args[1] and not TASKS[args[1]] then
    return M.set_model(args[1], task, load)
  end
  local client = require('aigents').client(api.nvim_get_current_buf())
  if client then
    local params = { command = 'aigents.listModels', arguments = { vim.empty_dict() } }
    client:request('workspace/executeCommand', params, function(err, result)
      if err then
        vim.notify('aigents: cannot list models: ' .. err.message, vim.log.levels.WARN)
        return
      end
      choose(model_list(result), task, result and result.suggestions, load)
    end)
    return
  end
  local cmd = models_cmd()
  if not cmd then
    vim.notify('aigents: cannot list models (aigents-lsp not found); use :AigentsModel {id}', vim.log.levels.WARN)
    return
  end
  vim.system(cmd, { text = true }, function(done)
    vim.schedule(function()
      local ok, decoded = pcall(vim.json.decode, done.stdout or '')
      local models = ok and model_list(decoded) or nil
      if not models or #models == 0 then
        local why = vim.trim(done.stderr or '') ~= '' and vim.trim(done.stderr) or 'no models'
        vim.notify('aigents: cannot list models: ' .. why, vim.log.levels.WARN)
        return
      end
      choose(models, task)
    end)
  end)
end

function M.status()
  vim.notify(require('aigents.status').describe())
end

--- Define the :Aigents* user commands.
function M.create()
  local function define(name, fn, spec)
    api.nvim_create_user_command(name, function(opts)
      fn(opts)
    end, vim.tbl_extend('force', { force = true }, spec))
  end
  define('AigentsExplain', M.explain, { range = true, desc = 'aigents: explain the selection or line' })
  define('AigentsEdit', M.edit, { range = true, nargs = '*', desc = 'aigents: rewrite as instructed' })
  define('AigentsFix', M.fix, { range = true, desc = 'aigents: fix the diagnostics here' })
  define('AigentsDocstring', M.docstring, { range = true, desc = 'aigents: add a docstring' })
  define('AigentsTests', M.tests, { range = true, desc = 'aigents: write tests' })
  define('AigentsChat', M.chat, { range = true, nargs = '*', bang = true, desc = 'aigents: chat (! starts over)' })
  define('AigentsModel', M.model, {
    nargs = '*',
    desc = 'aigents: choose the model ([id] [completion|chat|embedding|all] [ctx=N ...], download ID[@QUANT])',
    complete = function(lead, line)
      local n = #vim.split(vim.trim(line), '%s+')
      local tasks = { 'completion', 'chat', 'embedding', 'all' }
      if n >= 2 and lead == '' or n >= 3 then
        return vim.tbl_filter(function(t) return vim.startswith(t, lead) end, tasks)
      end
      return {}
    end,
  })
  define('AigentsStatus', M.status, { desc = 'aigents: server status' })
  define('AigentsCancel', M.cancel, { desc = 'aigents: cancel running commands' })
end

return M
