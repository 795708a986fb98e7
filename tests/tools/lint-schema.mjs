// Lints a schema file with graphql-schema-linter (pinned in package.json), the way a frontend engineer
// reads it: every type, field, argument, input field and enum value has a description, and the
// connections follow the Relay specification. Prints each problem as `file:line:column message (rule)`
// and exits 1 when there is any (2 when the schema cannot be read or the linter is misconfigured).
//   node lint-schema.mjs <schema.graphql>
import { readFileSync } from 'node:fs';
import linter from 'graphql-schema-linter';
import { Schema } from 'graphql-schema-linter/lib/schema.js';

const RULES = [
  'types-have-descriptions',
  'fields-have-descriptions',
  'arguments-have-descriptions',
  'input-object-values-have-descriptions',
  'enum-values-have-descriptions',
  'relay-connection-types-spec',
  'relay-connection-arguments-spec',
  'relay-page-info-spec',
];

const [sdlPath] = process.argv.slice(2);
if (!sdlPath) {
  console.error('usage: node lint-schema.mjs <schema.graphql>');
  process.exit(2);
}
let sdl;
try {
  sdl = readFileSync(sdlPath, 'utf8');
} catch (e) {
  console.error(`cannot read ${sdlPath}: ${e.message}`);
  process.exit(2);
}

// Programmatic, so no .graphql-schema-linterrc or package.json section can change the rules.
const schema = new Schema(sdl, null);
const configuration = new linter.configuration.Configuration(schema, { rules: RULES });
const misconfigured = configuration.validate();
const rules = configuration.getRules();
if (misconfigured.length > 0 || rules.length !== RULES.length) {
  for (const issue of misconfigured) console.error(`linter configuration: ${issue.message}`);
  console.error(`linter configuration: ${rules.length} of the ${RULES.length} rules loaded`);
  process.exit(2);
}

const problems = linter.validator.validateSchemaDefinition(schema, rules, configuration);
for (const p of problems) {
  const at = p.locations?.[0];
  const where = at ? `${sdlPath}:${at.line}:${at.column}` : sdlPath;
  console.log(`${where} ${p.message} (${p.ruleName ?? 'graphql'})`);
}
if (problems.length > 0) {
  const byRule = {};
  for (const p of problems) byRule[p.ruleName] = (byRule[p.ruleName] ?? 0) + 1;
  const summary = Object.entries(byRule).map(([rule, n]) => `${n} ${rule}`).join(', ');
  console.error(`${problems.length} problem(s) in ${sdlPath}: ${summary}`);
  process.exit(1);
}
console.log(`${sdlPath}: no problems (${RULES.length} rules)`);
