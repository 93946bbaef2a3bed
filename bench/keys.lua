-- wrk script of bench/run.sh: every request carries another key of a keys
-- file (one per line, as `caddy apiusers seed --keys-out` writes it), so the
-- gateway sees each key for the first time until the file is used up.
--
--   wrk -t <T> -s bench/keys.lua <url> -- <keys file> <T>
--
-- Thread t of T sends keys t, t+T, t+2T, ...; the threads together walk the
-- file once before any key comes again. done() prints how many requests
-- were sent against how many keys.

local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("id", counter)
end

function init(args)
   keys = {}
   for line in io.lines(args[1]) do
      if #line > 0 then keys[#keys + 1] = line end
   end
   if #keys == 0 then error("no keys in " .. args[1]) end
   step = tonumber(args[2] or "1")
   i = id
end

function request()
   local key = keys[(i - 1) % #keys + 1]
   i = i + step
   return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. key })
end
