// Verifies webhook deliveries with the Standard Webhooks authors' own TypeScript implementation
// (npm `standardwebhooks`, pinned in package-lock.json), as a receiver written in Node would.
//
// Reads, on stdin, a JSON array of deliveries as a test's receiver recorded them:
//   [{ "secret": "whsec_...", "headers": { "webhook-id": ..., ... }, "body": "<the raw body>",
//      "valid": true }]
// and checks each with `new Webhook(secret).verify(body, headers)`: it must pass when `valid` is
// true (or left out) and fail when it is false (a secret that no longer signs). Prints one line per
// delivery; exits 1 on any mismatch, 2 on unusable input.
import { Webhook } from "standardwebhooks";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let deliveries;
try {
  deliveries = JSON.parse(Buffer.concat(chunks).toString("utf8"));
} catch (e) {
  console.error(`stdin is not JSON: ${e.message}`);
  process.exit(2);
}
if (!Array.isArray(deliveries) || deliveries.length === 0) {
  console.error("expected a non-empty JSON array of deliveries");
  process.exit(2);
}

let failures = 0;
for (const [i, d] of deliveries.entries()) {
  const expected = d.valid !== false;
  let verified = false;
  let why = "";
  try {
    const parsed = new Webhook(d.secret).verify(d.body, d.headers);
    verified = true;
    // The body verified is the JSON sent: it parses, and says what it is.
    if (typeof parsed !== "object" || typeof parsed.type !== "string") {
      verified = false;
      why = "the verified body is not an event";
    }
  } catch (e) {
    why = e.message;
  }
  const ok = verified === expected;
  if (!ok) failures += 1;
  console.log(
    `${ok ? "ok" : "FAIL"} ${i} ${d.headers["webhook-id"]}: ${verified ? "verified" : `refused (${why})`}` +
      `${expected ? "" : ", as expected of a secret that no longer signs"}`,
  );
}
console.log(`${deliveries.length - failures} of ${deliveries.length} as expected`);
process.exit(failures === 0 ? 0 : 1);
