// Send chat completion requests with the official openai Node SDK, one after the other, and
// print what the SDK made of each answer as one JSON array on stdout.
//
// Standard input is JSON: {"baseURL", "apiKey", "headers", "requests": [{"call", "body",
// "options"}]}: the client's base URL, key and default headers, then each request's body and
// its request options (e.g. {"headers": {...}}). `call` is how the SDK is asked:
//   "create": chat.completions.create(body), the completion object;
//   "chunks": chat.completions.create({...body, stream: true}), every chunk it yielded;
//   "stream": the chat.completions.stream(body) helper, its finalChatCompletion().
// An error the SDK throws becomes {"error": {"status", "type", "code", "message", "class"}}
// (plan.mjs) and the run goes on with the next request.
import { clientOf, printAnswers, readPlan } from './plan.mjs';

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

const plan = await readPlan();
const client = clientOf(plan);
await printAnswers(plan.requests, (request) => send(client, request));
