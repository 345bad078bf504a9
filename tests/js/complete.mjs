// Send chat completion requests with the official openai Node SDK, one after the other, and
// print what the SDK made of each answer as one JSON array on stdout.
//
// Standard input is JSON: {"baseURL", "apiKey", "headers", "requests": [{"call", "body",
// "options"}]}: the client's base URL, key and default headers, then each request's body and
// its request options (e.g. {"headers": {...}}). `call` is how the SDK is asked:
//   "create": chat.completions.create(body), the completion object;
//   "chunks": chat.completions.create({...body, stream: true}), every chunk it yielded;
//   "stream": the chat.completions.stream(body) helper, its finalChatCompletion().
// An error the SDK throws becomes {"error": {"status", "type", "code", "message", "class"}} and
// the run goes on with the next request, so a test sees what a caller of the SDK would catch.
import OpenAI from 'openai';

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString('utf8'));
}

async function send(client, { call, body, options }) {
  const completions = client.chat.completions;
  if (call === 'create') return completions.create(body, options);
  if (call === 'chunks') {
    const chunks = [];
    for await (const chunk of await completions.create({ ...body, stream: true }, options)) {
      chunks.push(chunk);
    }
    return { chunks };
  }
  if (call === 'stream') return completions.stream(body, options).finalChatCompletion();
  throw new Error(`unknown call ${call}`);
}

function described(error) {
  const { status, type, code, message } = error;
  const kind = error.constructor.name; // BadRequestError, AuthenticationError, APIError, ...
  return { error: { status: status ?? null, type: type ?? null, code: code ?? null, message, class: kind } };
}

const plan = await readStdin();
const client = new OpenAI({
  apiKey: plan.apiKey,
  baseURL: plan.baseURL,
  defaultHeaders: plan.headers ?? {},
  maxRetries: 0,
  timeout: 20_000,
});
const results = [];
for (const request of plan.requests) {
  try {
    results.push(await send(client, request));
  } catch (error) {
    if (!(error instanceof OpenAI.OpenAIError)) throw error;
    results.push(described(error));
  }
}
process.stdout.write(JSON.stringify(results));
