-- Drives codesearch-ls with Neovim's built-in LSP client (the 0.7 API: start_client,
-- buf_attach_client, request_sync) and writes what came back to $CODESEARCH_NVIM_OUT as JSON.
--
-- Environment: CODESEARCH_NVIM_CMD (JSON list: the server command), CODESEARCH_NVIM_ROOT (the
-- workspace), CODESEARCH_NVIM_FILE (a file in it to open), CODESEARCH_NVIM_QUERY, CODESEARCH_NVIM_OUT.
local env = vim.env
local out = { ok = false, statuses = {} }

local function write_result()
  local handle = assert(io.open(env.CODESEARCH_NVIM_OUT, "w"))
  handle:write(vim.fn.json_encode(out))
  handle:close()
end

local function run()
  local root = env.CODESEARCH_NVIM_ROOT
  local client_id = vim.lsp.start_client({
    name = "codesearch",
    cmd = vim.fn.json_decode(env.CODESEARCH_NVIM_CMD),
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = vim.fn.fnamemodify(root, ":t") } },
    init_options = { device = "cpu", exclude = {} },
    handlers = {
      ["codesearch/status"] = function(_, params)
        table.insert(out.statuses, params)
      end,
    },
  })
  assert(client_id, "vim.lsp.start_client failed")

  local bufnr = vim.fn.bufadd(env.CODESEARCH_NVIM_FILE)
  vim.fn.bufload(bufnr)
  vim.lsp.buf_attach_client(bufnr, client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  assert(vim.wait(30000, function() return client.initialized end, 50), "the server did not initialize")
  out.workspace_symbol_provider = client.server_capabilities.workspaceSymbolProvider ~= nil

  local ready = vim.wait(60000, function()
    local last = out.statuses[#out.statuses]
    return last ~= nil and last.state == "ready"
  end, 50)
  assert(ready, "the server never said it was ready")

  -- the editor's ordinary symbol picker request
  local response, err = client.request_sync("workspace/symbol", { query = env.CODESEARCH_NVIM_QUERY }, 20000, bufnr)
  assert(response, "workspace/symbol failed: " .. tostring(err))
  assert(not response.err, "workspace/symbol error: " .. vim.inspect(response.err))
  out.symbols = response.result
  -- what the symbol picker shows, through Neovim's own conversion to quickfix items
  out.items = vim.lsp.util.symbols_to_items(response.result or {}, bufnr)

  -- the custom request
  response, err = client.request_sync("codesearch/search", { query = env.CODESEARCH_NVIM_QUERY, limit = 3 },
    20000, bufnr)
  assert(response, "codesearch/search failed: " .. tostring(err))
  assert(not response.err, "codesearch/search error: " .. vim.inspect(response.err))
  out.search = response.result

  client.stop()
  out.stopped = vim.wait(10000, function() return client.is_stopped() end, 50)
  out.ok = true
end

local ok, err = pcall(run)
if not ok then
  out.error = tostring(err)
end
write_result()
vim.cmd("qa!")
