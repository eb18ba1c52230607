-- Headless Neovim as an LSP client of starchat-lsp, for tests/editors/test_neovim.py.
--
--   nvim --headless -i NONE -n -u nvim_fix.lua FILE      (with $STARCHAT_NVIM_JOB set)
--
-- Starts the server with Neovim's own LSP client, selects the job's lines in Visual mode, lists
-- the code actions on them, resolves the quickfix action with the job's title, applies its edit
-- with vim.lsp.util.apply_workspace_edit, writes the buffer, stops the server and quits.
-- The job is a JSON file named by $STARCHAT_NVIM_JOB: cmd, init_options, lines (1-based, first
-- and last), title, timeout_ms, result, log. What happened goes to `result` as JSON; the exit
-- status is 0 when the script ran to the end, 2 when it failed (the reason is in the result).
-- Runs on Neovim 0.7 (Debian 12) to 0.11: vim.lsp.start and client:request() are newer.

local job = vim.fn.json_decode(table.concat(vim.fn.readfile(os.getenv('STARCHAT_NVIM_JOB')), '\n'))
local version = vim.version()
local result = {
  nvim = string.format('%d.%d.%d', version.major, version.minor, version.patch),
  lsp_log = vim.lsp.get_log_path(),
  actions = {},
  messages = {},
  errors = {},
}

local function log(text)
  local line = string.format('%.3f %s', vim.loop.hrtime() / 1e9, text)
  vim.fn.writefile(vim.split(line, '\n', { plain = true }), job.log, 'a')
end

local function save_result()
  vim.fn.writefile({ vim.fn.json_encode(result) }, job.result)
end

local function wait_for(what, predicate)
  log('waiting for ' .. what)
  if not vim.wait(job.timeout_ms, predicate, 20) then
    error(string.format('timed out after %d ms waiting for %s', job.timeout_ms, what), 0)
  end
end

-- Neovim 0.11 made request() a method (client:request); 0.7 to 0.10 call it as a field.
local function request(client, method, params, handler, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local show_message = vim.lsp.handlers['window/showMessage']
vim.lsp.handlers['window/showMessage'] = function(err, params, ctx, config)
  table.insert(result.messages, { type = params.type, message = params.message })
  log('window/showMessage: ' .. params.message)
  return show_message(err, params, ctx, config)
end

local function fix_with_starchat()
  local bufnr = vim.api.nvim_get_current_buf()
  local file = vim.api.nvim_buf_get_name(bufnr)
  local state = {}
  local config = {
    name = 'starchat',
    cmd = job.cmd,
    root_dir = vim.fn.fnamemodify(file, ':h'),
    init_options = job.init_options,
    on_attach = function() state.attached = true end,
    on_exit = function(code, signal) state.exit = { code = code, signal = signal } end,
  }
  local client_id
  if vim.lsp.start then -- 0.8 and later: start (or reuse) a client and attach the buffer
    client_id = vim.lsp.start(config, { bufnr = bufnr })
  else
    client_id = vim.lsp.start_client(config)
    vim.lsp.buf_attach_client(bufnr, client_id)
  end
  result.client_started = client_id ~= nil
  -- on_attach comes after initialize and didOpen
  wait_for('the server to initialize', function() return state.attached or state.exit end)
  if not state.attached then
    error('the server exited before initializing: ' .. vim.inspect(state.exit), 0)
  end
  local client = vim.lsp.get_client_by_id(client_id)
  result.offset_encoding = client.offset_encoding

  -- Select the lines in Visual mode, as a user would; leaving it sets the '< and '> marks that
  -- make_given_range_params reads.
  vim.cmd(string.format('normal! %dGV%dG\27', job.lines[1], job.lines[2]))
  local params = vim.lsp.util.make_given_range_params(nil, nil, bufnr, client.offset_encoding)
  params.context = { diagnostics = {} }
  result.range = params.range

  local listed = {}
  request(client, 'textDocument/codeAction', params, function(err, actions)
    listed.err, listed.actions = err, actions or {}
    listed.done = true
  end, bufnr)
  wait_for('textDocument/codeAction', function() return listed.done end)
  if listed.err then
    error('textDocument/codeAction failed: ' .. vim.inspect(listed.err), 0)
  end
  local chosen
  for _, action in ipairs(listed.actions) do
    table.insert(result.actions, { title = action.title, kind = action.kind or vim.NIL })
    if action.kind == 'quickfix' and action.title == job.title then
      chosen = action
    end
  end
  if not chosen then
    error('no quickfix action titled ' .. job.title, 0)
  end

  local resolving = {}
  local started = vim.loop.hrtime()
  request(client, 'codeAction/resolve', chosen, function(err, action)
    resolving.err, resolving.action = err, action
    resolving.done = true
  end, bufnr)
  wait_for('codeAction/resolve', function() return resolving.done end)
  result.resolve_s = (vim.loop.hrtime() - started) / 1e9
  if resolving.err then
    error('codeAction/resolve failed: ' .. vim.inspect(resolving.err), 0)
  end
  local resolved = resolving.action
  result.resolved = { title = resolved.title, kind = resolved.kind, has_edit = resolved.edit ~= nil }
  if resolved.edit then
    result.edit = resolved.edit
    vim.lsp.util.apply_workspace_edit(resolved.edit, client.offset_encoding)
  end
  result.modified = vim.bo[bufnr].modified
  vim.cmd('write')
  result.written = true

  vim.lsp.stop_client(client_id)
  wait_for('the server to exit', function() return state.exit ~= nil end)
  result.server_exit = state.exit
end

vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  callback = function()
    local ok, err = xpcall(fix_with_starchat, debug.traceback)
    if not ok then
      table.insert(result.errors, tostring(err))
      log('failed: ' .. tostring(err))
    end
    result.nvim_messages = vim.fn.execute('messages')
    save_result()
    vim.cmd(ok and 'qall!' or 'cquit 2')
  end,
})
