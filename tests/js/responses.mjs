// Send Responses API requests with the official openai Node SDK, one after the other, and print
// what the SDK made of each answer as one JSON array on stdout.
//
// Standard input is JSON: {"baseURL", "apiKey", "requests": [{"call", "body", "id", "query"}]}.
// `call` is how the SDK is asked:
//   "create": responses.create(body), the Response;
//   "stream": the responses.stream(body) helper: {"events": every event it emitted,
//             "response": its finalResponse()};
//   "retrieve": responses.retrieve(id), the Response;
//   "inputItems": responses.inputItems.list(id, query) read with `for await`, which fetches
//             page after page: {"items": every item, "pages": how many GETs it took}.
// An error the SDK throws becomes {"error": {"status", "type", "code", "message", "class"}}
// (plan.mjs) and the run goes on with the next request.
import { clientOf, printAnswers, readPlan } from './plan.mjs';

let fetches = 0;
const counted = (...args) => {
  fetches += 1;
  return fetch(...args);
};

async function send(client, { call, body, id, query }) {
  const responses = client.responses;
  if (call === 'create') return responses.create(body);
  if (call === 'stream') {
    const stream = responses.stream(body);
    const events = [];
    for await (const event of stream) events.push(event);
    return { events, response: await stream.finalResponse() };
  }
  if (call === 'retrieve') return responses.retrieve(id);
  if (call === 'inputItems') {
    const before = fetches;
    const items = [];
    for await (const item of responses.inputItems.list(id, query)) items.push(item);
    return { items, pages: fetches - before };
  }
  throw new Error(`unknown call ${call}`);
}

const plan = await readPlan();
const client = clientOf(plan, counted);
await printAnswers(plan.requests, (request) => send(client, request));
