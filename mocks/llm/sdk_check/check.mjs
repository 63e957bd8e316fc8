// Streams from the agentlab mock LLM with the official OpenAI and Anthropic SDKs, unchanged
// but for the base URL, and exits non-zero on any mismatch.
//
//   node check.mjs http://127.0.0.1:PORT
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.argv[2];
if (!base) {
  console.error('usage: node check.mjs http://127.0.0.1:PORT');
  process.exit(2);
}

let failures = 0;
let checks = 0;
function expect(condition, what, detail) {
  checks += 1;
  if (!condition) {
    failures += 1;
    console.error(`FAIL ${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}

async function step(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures += 1;
    console.error(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

const weatherTool = {
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: {
    type: 'object',
    properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['city'],
  },
};
const question = [{ role: 'user', content: 'What is the weather in Paris?' }];

// ---------------------------------------------------------------- OpenAI
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-mock', maxRetries: 0 });

await step('openai: models.list', async () => {
  const models = [];
  for await (const m of openai.models.list()) models.push(m.id);
  expect(models.length > 0, 'openai models listed', models);
});

let streamedText = '';
await step('openai: chat.completions.create stream with include_usage', async () => {
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o-mini', messages: question, max_tokens: 24, stream: true,
    stream_options: { include_usage: true },
  });
  let finish = null;
  let usage = null;
  let role = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    expect(chunk.object === 'chat.completion.chunk', 'chunk object', chunk.object);
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta.role) role = choice.delta.role;
    if (choice.delta.content) streamedText += choice.delta.content;
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  expect(role === 'assistant', 'openai stream role', role);
  expect(streamedText.length > 0, 'openai streamed text');
  expect(finish === 'stop' || finish === 'length', 'openai finish_reason', finish);
  expect(usage && usage.completion_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
    'openai usage chunk', usage);
  expect(chunks >= usage.completion_tokens + 2, 'openai one chunk per token', { chunks, usage });
});

await step('openai: non-streaming create gives the same text (same seed, same request)', async () => {
  const completion = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: question, max_tokens: 24 });
  expect(completion.object === 'chat.completion', 'completion object', completion.object);
  expect(completion.choices[0].message.content === streamedText, 'openai text equals streamed text',
    { full: completion.choices[0].message.content, streamedText });
  expect(completion.usage.completion_tokens > 0, 'openai usage', completion.usage);
});

await step('openai: chat.completions.stream helper with a tool call', async () => {
  const runner = openai.chat.completions.stream({
    model: 'gpt-4o-mini', messages: question, max_tokens: 200,
    tools: [{ type: 'function', function: weatherTool }],
  });
  const final = await runner.finalChatCompletion();
  const choice = final.choices[0];
  expect(choice.finish_reason === 'tool_calls', 'openai tool finish_reason', choice.finish_reason);
  const call = choice.message.tool_calls?.[0];
  expect(call?.type === 'function' && call.function.name === 'get_weather', 'openai tool call name', call);
  const args = JSON.parse(call.function.arguments);
  expect(typeof args.city === 'string' && ['celsius', 'fahrenheit'].includes(args.unit), 'openai tool arguments', args);
  expect(call.id.startsWith('call_'), 'openai tool call id', call.id);
});

await step('openai: after the tool result the model answers in text', async () => {
  const completion = await openai.chat.completions.create({
    model: 'gpt-4o-mini', max_tokens: 16, tools: [{ type: 'function', function: weatherTool }],
    messages: [...question,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' }],
  });
  expect(completion.choices[0].finish_reason !== 'tool_calls', 'openai loop ends', completion.choices[0].finish_reason);
  expect(completion.choices[0].message.content.length > 0, 'openai final answer');
});

await step('openai: errors map to the SDK error classes', async () => {
  try {
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: question },
      { headers: { 'x-mock-fault': 'error=429' } });
    expect(false, 'openai 429 should throw');
  } catch (e) {
    expect(e instanceof OpenAI.RateLimitError && e.status === 429, 'openai RateLimitError', e?.status);
  }
  try {
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [] });
    expect(false, 'openai 400 should throw');
  } catch (e) {
    expect(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'messages', 'openai BadRequestError', { status: e?.status, param: e?.param });
  }
});

// ---------------------------------------------------------------- Anthropic
const anthropic = new Anthropic({ baseURL: base, apiKey: 'sk-ant-mock', maxRetries: 0 });

let anthropicText = '';
await step('anthropic: messages.stream text', async () => {
  const stream = anthropic.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 24, messages: question });
  stream.on('text', (t) => { anthropicText += t; });
  const message = await stream.finalMessage();
  expect(message.type === 'message' && message.role === 'assistant', 'anthropic message', message.type);
  expect(message.content[0]?.type === 'text' && message.content[0].text === anthropicText, 'anthropic final text equals streamed text',
    { final: message.content[0], anthropicText });
  expect(['end_turn', 'max_tokens'].includes(message.stop_reason), 'anthropic stop_reason', message.stop_reason);
  expect(message.usage.output_tokens > 0 && message.usage.input_tokens > 0, 'anthropic usage', message.usage);
});

await step('anthropic: raw event sequence from create({stream: true})', async () => {
  const stream = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: question, stream: true });
  const types = [];
  for await (const event of stream) types.push(event.type);
  const first = ['message_start', 'content_block_start'];
  const last = ['content_block_stop', 'message_delta', 'message_stop'];
  expect(JSON.stringify(types.slice(0, 2)) === JSON.stringify(first), 'anthropic first events', types);
  expect(JSON.stringify(types.slice(-3)) === JSON.stringify(last), 'anthropic last events', types);
  expect(types.filter((t) => t === 'content_block_delta').length > 0, 'anthropic deltas', types);
});

await step('anthropic: non-streaming create gives the same text', async () => {
  const message = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 24, messages: question });
  expect(message.content[0].text === anthropicText, 'anthropic text equals streamed text', { full: message.content[0].text, anthropicText });
});

await step('anthropic: messages.stream with tool_use', async () => {
  const stream = anthropic.messages.stream({
    model: 'claude-sonnet-4-5', max_tokens: 200, messages: question,
    tools: [{ name: weatherTool.name, description: weatherTool.description, input_schema: weatherTool.parameters }],
    tool_choice: { type: 'any' },
  });
  let partial = '';
  stream.on('inputJson', (delta) => { partial += delta; });
  const message = await stream.finalMessage();
  const block = message.content[0];
  expect(message.stop_reason === 'tool_use', 'anthropic tool stop_reason', message.stop_reason);
  expect(block?.type === 'tool_use' && block.name === 'get_weather' && block.id.startsWith('toolu_'), 'anthropic tool_use block', block);
  expect(typeof block.input.city === 'string', 'anthropic tool input parsed', block.input);
  expect(JSON.stringify(JSON.parse(partial)) === JSON.stringify(block.input), 'anthropic input_json deltas', partial);
});

await step('anthropic: errors map to the SDK error classes', async () => {
  try {
    await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: question },
      { headers: { 'x-mock-fault': 'error=529' } });
    expect(false, 'anthropic 529 should throw');
  } catch (e) {
    expect(e instanceof Anthropic.APIError && e.status === 529 && e.error?.error?.type === 'overloaded_error', 'anthropic overloaded', { status: e?.status, error: e?.error });
  }
  try {
    await anthropic.messages.create({ model: 'claude-sonnet-4-5', messages: question });
    expect(false, 'anthropic 400 should throw');
  } catch (e) {
    expect(e instanceof Anthropic.BadRequestError && e.status === 400, 'anthropic BadRequestError', e?.status);
  }
});

console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
