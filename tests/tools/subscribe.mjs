// Runs one GraphQL subscription with graphql-ws's reference client (the graphql-transport-ws
// protocol, over the `ws` package's WebSocket) and prints one JSON line per thing that happens, for a
// test to read as it comes:
//   {"connected":true}                      the server acknowledged connection_init
//   {"next":<payload>}                      an event (`data`, and `errors` when there are some)
//   {"error":<message or close>}            the subscription failed
//   {"complete":true}                       the server ended the subscription
//   {"closed":{"code":4403,"reason":"..."}} the socket closed (then the process exits)
// The client does not retry: a close is reported as it is.
//   node subscribe.mjs <ws url> <token|-> <query> [variables json]
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, query, variables] = process.argv.slice(2);
if (!query) {
  console.error('usage: subscribe.mjs <ws url> <token|-> <query> [variables json]');
  process.exit(2);
}
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token && token !== '-' ? { Authorization: `Bearer ${token}` } : {},
  lazy: false,
  retryAttempts: 0,
  // Reported, not thrown: the test decides what a close means.
  onNonLazyError: () => {},
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => {
      print({ closed: { code: event.code, reason: event.reason } });
      process.exit(0);
    },
  },
});

client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : {} },
  {
    next: (payload) => print({ next: payload }),
    error: (e) => print({ error: e && e.code !== undefined ? { code: e.code, reason: e.reason } : String(e?.message ?? JSON.stringify(e)) }),
    complete: () => print({ complete: true }),
  },
);
