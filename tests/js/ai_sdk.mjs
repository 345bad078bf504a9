// Hold a conversation with the Vercel AI SDK and its default OpenAI provider (`openai(model)`
// speaks the Responses API), the way an app does: each turn sends the messages so far (the
// earlier replies as the SDK returned them, in `response.messages`) and the new user message.
// Print every turn as JSON on stdout.
//
// Standard input is JSON: {"baseURL", "apiKey", "model", "turns": [user text, ...], "stream",
// "previous", "conversation", "resend", "tools"}. With `stream` each turn is streamText (its
// textStream read), else generateText. With `tools` the model has a get_weather tool (a zod
// schema; it returns "Sunny in <city>") and the SDK runs up to 3 steps, sending the tool's
// result back. With `previous` each request also passes a response id
// (providerOptions.openai.previousResponseId): "turn", the last turn's (every step of a turn
// sends the same); "step", the last step's, set per step with prepareStep (so a tool's result
// continues the response that called it).
// With `conversation` (a conversation's id) each request names it (providerOptions.openai
// .conversation) and each turn sends only its own user message, as the SDK's documentation
// does: the conversation holds the rest (the SDK leaves out what has an item id, a step's
// tool call among them, but still sends the turn's user message again with the call's result).
// With `resend` too, each turn sends all the messages so far, as an app built on useChat does:
// the SDK then leaves out every reply and call (they have item ids), not the user's messages
// nor the tools' results.
// Each turn prints {text, deltas, usage, responseId, steps, sent}: `sent` are the JSON bodies
// the SDK posted to the proxy in that turn.
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, stepCountIs, streamText, tool } from 'ai';
import { z } from 'zod';
import { readPlan } from './plan.mjs';

const weather = tool({
  description: 'The weather in a city.',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `Sunny in ${city}`,
});

let sent = [];
const recorded = (url, init) => {
  sent.push(JSON.parse(init.body));
  return fetch(url, init);
};

async function ask(options, stream) {
  if (!stream) {
    const { text, usage, response, steps } = await generateText(options);
    return { text, usage, response, steps, deltas: null };
  }
  let failure;
  const result = streamText({ ...options, onError: ({ error }) => { failure = error; } });
  const deltas = [];
  for await (const delta of result.textStream) deltas.push(delta);
  const [text, usage, response, steps] = await Promise.all([
    result.text, result.usage, result.response, result.steps,
  ]);
  if (failure) throw failure; // what the stream reported, else the SDK would only log it
  return { text, usage, response, steps, deltas };
}

const plan = await readPlan();
const openai = createOpenAI({ baseURL: plan.baseURL, apiKey: plan.apiKey, fetch: recorded });
const messages = [];
const turns = [];
let previousResponseId;
const continuing = (id) => (id ? { providerOptions: { openai: { previousResponseId: id } } } : {});
const eachStep = ({ steps }) => continuing(steps.at(-1)?.response.id ?? previousResponseId);
for (const text of plan.turns) {
  messages.push({ role: 'user', content: text });
  sent = [];
  const answer = await ask({
    model: openai(plan.model),
    messages: plan.conversation && !plan.resend ? messages.slice(-1) : messages,
    maxRetries: 0,
    ...(plan.tools && { tools: { get_weather: weather }, stopWhen: stepCountIs(3) }),
    ...(plan.previous === 'turn' && continuing(previousResponseId)),
    ...(plan.previous === 'step' && { prepareStep: eachStep }),
    ...(plan.conversation && { providerOptions: { openai: { conversation: plan.conversation } } }),
  }, plan.stream);
  messages.push(...answer.response.messages);
  previousResponseId = answer.response.id;
  turns.push({
    text: answer.text,
    deltas: answer.deltas,
    usage: answer.usage,
    responseId: answer.response.id,
    steps: answer.steps.map((step) => ({ finishReason: step.finishReason, content: step.content })),
    sent,
  });
}
process.stdout.write(JSON.stringify(turns));
