// One chat completion through the official openai-node SDK, with its default retry policy.
// Prints {"status": <HTTP status or null>, "error": <error class or null>} as one JSON line.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.GATEWAY_URL, apiKey: process.env.GATEWAY_KEY });
try {
  await client.chat.completions.create({ model: "llama3.2", messages: [{ role: "user", content: "hi" }] });
  console.log(JSON.stringify({ status: 200, error: null }));
} catch (error) {
  console.log(JSON.stringify({ status: error.status ?? null, error: error.constructor.name }));
}
