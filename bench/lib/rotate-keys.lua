-- wrk: send a different X-API-KEY on each request, taken in turn from the file $KEYS_FILE.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format(nil, nil, { ["X-API-KEY"] = keys[i] })
end
