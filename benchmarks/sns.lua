-- Posts pre-signed SNS notifications, each once, in file order (one wrk thread).
-- Lines of SNS_BODIES: <MessageId> TAB <TopicArn> TAB <compact JSON body>
local requests = {}
local next_index = 0

init = function(args)
  local path = os.getenv("SNS_BODIES")
  local sns_path = os.getenv("SNS_PATH") or "/sns/budgets"
  for line in io.lines(path) do
    local id, topic, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", sns_path, {
      ["Content-Type"] = "text/plain; charset=UTF-8",
      ["x-amz-sns-message-type"] = "Notification",
      ["x-amz-sns-message-id"] = id,
      ["x-amz-sns-topic-arn"] = topic,
    }, body)
  end
end

request = function()
  next_index = next_index + 1
  if next_index > #requests then
    next_index = 1  -- wrapped: from here on these are duplicates (the report says how many)
  end
  return requests[next_index]
end
