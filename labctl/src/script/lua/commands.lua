-- commands: running programs inside nodes from an experiment.
--
--   local must = require("commands").must
--   local rules = must(x.r1, { "nft", "list", "ruleset" })
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

return commands
