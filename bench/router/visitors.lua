-- Every request comes from a different visitor (a random X-Forwarded-For, which the router
-- believes from 127.0.0.1), so each flush does the work real traffic needs: a duplicate look-up
-- and a velocity window per visitor. nginx ignores the header; both get the same requests.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + id)
end

function request()
  wrk.headers["X-Forwarded-For"] = string.format(
    "%d.%d.%d.%d", math.random(1, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254)
  )
  return wrk.format(nil)
end
