-- post.lua - wrk script for the queue benchmark: POST /api/v1/messages with a ~2 KB JSON
-- message (to, subject, 2,059 bytes of text), the API key from $BENCH_API_KEY.
-- Counts the 202 answers per thread; done() prints one line "WRKRESULT {json}" that
-- cases.py reads: requests, accepted (202), other (any other status), duration_us, the
-- socket errors, and latency percentiles.
local key = os.getenv("BENCH_API_KEY") or ""
local line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\\n"

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"to": ["b@example.test"], "subject": "wrk bench", "text": "' ..
    string.rep(line, 29) .. '"}'

accepted = 0
other = 0
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function response(status, headers, body)
    if status == 202 then
        accepted = accepted + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local a, o = 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("accepted")
        o = o + t:get("other")
    end
    io.write(string.format('WRKRESULT {"requests": %d, "accepted": %d, "other": %d, ' ..
        '"duration_us": %d, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
        summary.requests, a, o, summary.duration,
        summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.timeout,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
