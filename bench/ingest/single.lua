-- wrk script: single-event POST /v1/events with a unique Idempotency-Key per event, plus a
-- share of retries of recent keys (same key, same body) that must come back as replays.
--
-- Arguments (after `--`): <api key> <key prefix> <out dir> <customers> <retry one in N>
-- Every response is logged, one line each, to <out dir>/keys-<thread>.txt:
--   A <key> <event id>   first answer for the key (201, not replayed)
--   R <key> <event id>   replay (201, Idempotent-Replayed: true)
--   E <key> <status>     anything else
-- The Python driver reads these files and checks them against the database.

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local token, prefix, out, customers, retry_every
local counter = 0

function init(args)
  token, prefix, out = args[1], args[2], args[3]
  customers = tonumber(args[4])
  retry_every = tonumber(args[5])
  prefix = prefix .. "-" .. tid .. "-"
  out = io.open(out .. "/keys-" .. tid .. ".txt", "w")
  out:setvbuf("line")
  math.randomseed(tid * 7919)
end

local function body_for(n)
  -- Deterministic in n, so a retry of key n sends exactly the same body.
  local customer = (n * 7919 + tid * 104729) % customers
  return string.format(
    '{"type":"sale","customer_id":"cus_%d","amount":%d,"currency":"USD","metadata":{"n":%d}}',
    customer, 500 + (n * 37) % 20000, n)
end

function request()
  local n
  if retry_every > 0 and counter > 50 and math.random(retry_every) == 1 then
    -- A recent key: its first request may still be in flight on another connection, which is
    -- exactly the race idempotency must survive.
    n = counter - math.random(0, 50)
  else
    counter = counter + 1
    n = counter
  end
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. n,
  }
  return wrk.format("POST", "/v1/events", headers, body_for(n))
end

function response(status, headers, body)
  local key = string.match(body, '"external_id":"([^"]+)"')
  if status == 201 and key then
    local id = string.match(body, '"id":"(evt_[^"]+)"')
    local replayed = headers["idempotent-replayed"] or headers["Idempotent-Replayed"]
    out:write((replayed and "R " or "A ") .. key .. " " .. id .. "\n")
  else
    out:write("E " .. (key or "?") .. " " .. status .. "\n")
  end
end

function done(summary, latency, requests)
  local f = io.open(os.getenv("WRK_SUMMARY"), "w")
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
  f:close()
end
