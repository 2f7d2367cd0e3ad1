-- wrk script of bench/serve-load: every request is POST with the body of the file
-- $WRK_BODY and the content type $WRK_CONTENT_TYPE (default image/png). The path comes from
-- the URL given to wrk. wrk counts non-2xx answers itself ("Non-2xx or 3xx responses").
local path = assert(os.getenv("WRK_BODY"), "set WRK_BODY to the file to send")
local file = assert(io.open(path, "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "image/png"
