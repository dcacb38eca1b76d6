-- commands: running programs inside nodes from an experiment, and changes
-- that an experiment makes and must take back.
--
--   local commands = require("commands")
--   local rules = commands.must(x.r1, { "nft", "list", "ruleset" })
--   commands.with(make, undo, body)
--
-- `x.<node>:run{...}` returns a table with status, stdout and stderr and
-- leaves the judging to the lab; `must` is for the commands a measurement
-- depends on: set-up steps that must not fail quietly.

local commands = {}

-- Runs argv in a node and fails the experiment (at the caller's line)
-- unless it exits 0; returns its output.
function commands.must(node, argv)
  local r = node:run(argv)
  if r.status ~= 0 then
    error(("%s: `%s` exited %d: %s"):format(node.name, table.concat(argv, " "), r.status, r.stderr), 2)
  end
  return r.stdout
end

-- Makes a change, runs body, and takes the change back, so an experiment
-- leaves the lab as it found it. Returns what body returns.
--
--   * undo runs whenever make was called: after body, whether body failed
--     or not, and also when make itself fails, possibly halfway (an XDP
--     program attached, its map not yet filled). So undo must accept a
--     change that is only partly made: detach what may not be attached,
--     delete with a command that tolerates absence.
--   * the first error wins: make's, else body's, raised again unchanged
--     (same message, same line) once undo ran. If undo fails too, its error
--     is added to that message; if only undo fails, its error is raised.
--   * an experiment stopped by its time limit or Ctrl-C is not caught here:
--     the lab is torn down after it anyway.
function commands.with(make, undo, body)
  local results = table.pack(pcall(function()
    make()
    return body()
  end))
  local undone, undo_error = pcall(undo)
  if not results[1] then
    local err = results[2]
    if not undone then
      err = ("%s\n(and undoing the change failed too: %s)"):format(tostring(err), tostring(undo_error))
    end
    error(err, 0)
  end
  if not undone then
    error(undo_error, 0)
  end
  return table.unpack(results, 2, results.n)
end

return commands
