// Reads the schema from a running Guestpass the way GraphiQL, Apollo and Relay tooling do (graphql-js's
// getIntrospectionQuery with every option), builds it with buildClientSchema, and compares it with the
// checked-in schema.graphql, both printed by graphql-js after sorting (the two printers order types
// differently; what they describe must be the same).
//   node introspect.mjs <graphql url> <schema.graphql> [bearer token]
import { readFileSync } from 'node:fs';
import {
  buildClientSchema, buildSchema, getIntrospectionQuery, lexicographicSortSchema, printSchema,
} from 'graphql';

const [url, sdlPath, token] = process.argv.slice(2);
const query = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
});
const headers = { 'content-type': 'application/json' };
if (token) headers.authorization = `Bearer ${token}`;
const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query }) });
const body = await res.json();
if (res.status !== 200 || body.errors) {
  console.error(`introspection refused: HTTP ${res.status} ${JSON.stringify(body.errors)}`);
  process.exit(1);
}
const print = (schema) => printSchema(lexicographicSortSchema(schema));
const live = print(buildClientSchema(body.data));
const checkedIn = print(buildSchema(readFileSync(sdlPath, 'utf8')));
if (live !== checkedIn) {
  const a = live.split('\n');
  const b = checkedIn.split('\n');
  const i = a.findIndex((line, k) => line !== b[k]);
  console.error(`the live schema differs from ${sdlPath} at line ${i + 1}:\n  live:       ${a[i]}\n  checked in: ${b[i]}`);
  process.exit(1);
}
console.log(`introspected ${Object.keys(buildClientSchema(body.data).getTypeMap()).length} types; identical to ${sdlPath}`);
