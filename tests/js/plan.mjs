// What the scripts here share: the plan read as JSON from standard input, an openai Node SDK
// client made from it, and a run of requests whose answers (or the errors the SDK threw,
// described) are printed as one JSON array on standard output.
import OpenAI from 'openai';

export async function readPlan() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString('utf8'));
}

// The SDK's client on the plan's base URL and key, its default headers, no retries; `fetch`
// (optional) sees every request it sends.
export function clientOf(plan, fetch) {
  return new OpenAI({
    apiKey: plan.apiKey,
    baseURL: plan.baseURL,
    defaultHeaders: plan.headers ?? {},
    maxRetries: 0,
    timeout: 20_000,
    ...(fetch && { fetch }),
  });
}

// Send each request with `send(request)`, in order, and print what came of each. An error the
// SDK throws becomes {"error": {"status", "type", "code", "message", "class"}} and the run goes
// on with the next request, so a test sees what a caller of the SDK would catch.
export async function printAnswers(requests, send) {
  const results = [];
  for (const request of requests) {
    try {
      results.push(await send(request));
    } catch (error) {
      if (!(error instanceof OpenAI.OpenAIError)) throw error;
      results.push(described(error));
    }
  }
  process.stdout.write(JSON.stringify(results));
}

function described(error) {
  const { status, type, code, message } = error;
  const kind = error.constructor.name; // BadRequestError, AuthenticationError, APIError, ...
  return { error: { status: status ?? null, type: type ?? null, code: code ?? null, message, class: kind } };
}
