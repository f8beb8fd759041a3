-- wrk script: signed CryptoBot `invoice_paid` deliveries, half of them duplicates of earlier ones.
--
--   wrk … -s scripts/bench/cryptobot_webhooks.lua URL -- DELIVERIES_FILE THREADS LAG
--
-- DELIVERIES_FILE has one "signature<TAB>body" line per pending payment (scripts/bench/cryptobot_webhooks.py).
-- Thread t of THREADS takes lines t+1, t+1+THREADS, … : its own payments, so no two threads credit the same one.
-- Each thread first sends LAG first deliveries, then alternates: the next payment's first delivery, then the
-- delivery sent LAG first deliveries earlier, once more, byte for byte (as a gateway's retry is). LAG is well
-- above the requests a thread has in flight, so the original has been answered and the repeat takes the
-- "already completed" path rather than queueing behind it on the row lock. The file is read as the run goes,
-- so the run starts at once whatever its size. A thread that runs out of payments repeats old deliveries
-- only (`exhausted` counts those, and the mix is then no longer half and half).
-- done() prints one line for scripts/bench.sh:
--   webhooks threads=… first=… repeats=… exhausted=… non2xx=…

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local file, stride, lag
local ring = {}         -- the last lag + 1 first deliveries, by first-delivery number modulo (lag + 1)
local replay_first = false
-- Read back by done() through thread:get, so globals.
first, repeats, exhausted, non2xx = 0, 0, 0, 0

function init(args)
  local path = args[1]
  stride = tonumber(args[2])
  lag = tonumber(args[3])
  assert(path and stride and lag and lag > 0, "usage: -- DELIVERIES_FILE THREADS LAG")
  file = assert(io.open(path, "r"))
  -- Skip to this thread's first line.
  for _ = 1, id do file:read("*l") end
  -- wrk calls request() once on thread 0 before the run to check what it returns, and never sends that
  -- request: thread 0 hands its first delivery out twice so that payment is still delivered.
  replay_first = (id == 0)
end

-- The next payment's first delivery, or nil when this thread has none left.
local function next_first()
  local line = file:read("*l")
  if line == nil then return nil end
  for _ = 2, stride do file:read("*l") end
  local tab = line:find("\t", 1, true)
  local request = wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["crypto-pay-api-signature"] = line:sub(1, tab - 1),
  }, line:sub(tab + 1))
  ring[first % (lag + 1)] = request
  first = first + 1
  return request
end

local send_repeat = false
local pending = nil     -- thread 0's first delivery, handed out a second time (see init)

function request()
  if replay_first then
    replay_first = false
    pending = next_first()
    return pending
  end
  if pending ~= nil then
    local request = pending
    pending = nil
    return request
  end
  if send_repeat then
    send_repeat = false
    local request = ring[repeats % (lag + 1)]
    repeats = repeats + 1
    return request
  end
  if exhausted == 0 then
    local request = next_first()
    if request ~= nil then
      send_repeat = first > lag
      return request
    end
  end
  -- Out of payments: repeat the last first deliveries over and over.
  assert(first > 0, "no deliveries for this thread in the file")
  exhausted = exhausted + 1
  return ring[exhausted % math.min(first, lag + 1)]
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local totals = { first = 0, repeats = 0, exhausted = 0, non2xx = 0 }
  for _, thread in ipairs(threads) do
    for key in pairs(totals) do totals[key] = totals[key] + (thread:get(key) or 0) end
  end
  io.write(string.format("webhooks threads=%d first=%d repeats=%d exhausted=%d non2xx=%d\n", #threads,
    totals.first, totals.repeats, totals.exhausted, totals.non2xx))
end
