// Run a tool-calling loop with the official openai Node SDK, as its documentation writes one:
// ask, run the tools the reply calls (their outputs are canned), send the results, until the
// reply calls none. Print every round as JSON on stdout.
//
// Standard input is JSON: {"baseURL", "apiKey", "headers", "body", "outputs", "stream",
// "resend"}. `body` is the first request (model, messages, tools, ...); `outputs` maps a tool's
// name to what it returns. With `stream` each round uses the chat.completions.stream() helper
// (its chunks are printed too), else chat.completions.create(). With `resend` every request
// carries the whole conversation, the SDK's assistant messages pushed back as it returned them;
// without it only what is new (the tool results), as the proxy's chat mode allows.
import { clientOf, readPlan } from './plan.mjs';

const MAX_ROUNDS = 4;

async function ask(client, body, stream) {
  if (!stream) return { completion: await client.chat.completions.create(body) };
  const chunks = [];
  const run = client.chat.completions.stream(body).on('chunk', (chunk) => chunks.push(chunk));
  return { completion: await run.finalChatCompletion(), chunks };
}

const plan = await readPlan();
const client = clientOf(plan);
const conversation = [...plan.body.messages];
let news = plan.body.messages;
const rounds = [];
for (let round = 0; round < MAX_ROUNDS; round++) {
  const sent = plan.resend ? [...conversation] : news;
  const answer = await ask(client, { ...plan.body, messages: sent }, plan.stream);
  rounds.push({ sent, ...answer });
  const message = answer.completion.choices[0].message;
  conversation.push(message);
  if (!message.tool_calls?.length) break;
  news = message.tool_calls.map((call) => ({
    role: 'tool',
    tool_call_id: call.id,
    content: plan.outputs[call.function.name],
  }));
  conversation.push(...news);
}
process.stdout.write(JSON.stringify(rounds));
