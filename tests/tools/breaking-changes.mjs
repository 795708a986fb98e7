// Every breaking change between the last release's schema and the current one must be named in
// CHANGELOG.md, under the unreleased "### Breaking" heading: graphql-js finds them (removed types and
// fields, changed field types, removed arguments and enum values...), this checks the changelog names
// each one's type or field in backticks. A field kept with @deprecated is not a breaking change.
//
//   node tests/tools/breaking-changes.mjs <released.graphql> <schema.graphql> <CHANGELOG.md>
import { readFileSync } from 'node:fs';
import { buildSchema, findBreakingChanges } from 'graphql';

const [released, current, changelog] = process.argv.slice(2);
if (!changelog) {
  console.error('usage: breaking-changes.mjs <released.graphql> <schema.graphql> <CHANGELOG.md>');
  process.exit(2);
}
const text = readFileSync(changelog, 'utf8');
const unreleased = text.split(/^## /m).find((s) => s.startsWith('Unreleased')) ?? '';
const breaking = (unreleased.split(/^### /m).find((s) => s.startsWith('Breaking')) ?? '');
const named = new Set([...breaking.matchAll(/`([^`]+)`/g)].map((m) => m[1]));

const changes = findBreakingChanges(
  buildSchema(readFileSync(released, 'utf8')),
  buildSchema(readFileSync(current, 'utf8')),
);
// The built-in directives are printed by the engine, not designed here.
const standard = /^(DIRECTIVE_\w+)$/;
const missing = [];
for (const c of changes) {
  if (standard.test(c.type)) continue;
  // "Type.field ..." or "Type ...": the coordinate is the description's first word.
  const coordinate = c.description.split(' ')[0].replace(/\.$/, '');
  const [type, field] = coordinate.split('.');
  const candidates = field
    ? [coordinate, field, `${field}(`]
    : [type];
  const mentioned = candidates.some((n) => named.has(n) || [...named].some((m) => m.startsWith(`${n}(`) || m.startsWith(`${n} `)));
  if (!mentioned) missing.push(`${c.type}: ${c.description}`);
}
if (missing.length) {
  console.log(`${missing.length} breaking change(s) not named under "### Breaking" in ${changelog}:`);
  for (const m of missing) console.log(`  ${m}`);
  process.exit(1);
}
console.log(`${changes.length} breaking change(s), each named in ${changelog}`);
