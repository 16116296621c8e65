// Checks the OpenAPI document with two independent tools from npm, as its users would:
// @apidevtools/swagger-parser validates it against the OpenAPI schema (every $ref resolved),
// and openapi-typescript generates a typed client description from it. Run by `cargo xtask
// test` as `node xtask/js/check-openapi.mjs model/openapi.json`; exits non-zero on a problem.
import { pathToFileURL } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
import openapiTS, { astToString } from 'openapi-typescript';

const file = process.argv[2];
if (!file) {
  console.error('usage: check-openapi.mjs <openapi.json>');
  process.exit(2);
}
// validate() dereferences in place: give it its own copy.
const api = await SwaggerParser.validate(file);
const types = astToString(await openapiTS(pathToFileURL(file)));
let operations = 0;
const missing = [];
for (const ops of Object.values(api.paths)) {
  for (const op of Object.values(ops)) {
    operations += 1;
    if (!types.includes(`${op.operationId}: {`)) missing.push(op.operationId);
  }
}
if (missing.length > 0) {
  console.error(`openapi-typescript generated no operation for: ${missing.join(', ')}`);
  process.exit(1);
}
const untypedQueries = [];
for (const [path, ops] of Object.entries(api.paths)) {
  for (const [method, op] of Object.entries(ops)) {
    for (const p of op.parameters ?? []) {
      if (p.in === 'query' && !p.schema) untypedQueries.push(`${method} ${path} ${p.name}`);
    }
  }
}
if (untypedQueries.length > 0) {
  console.error(`query parameters without a schema: ${untypedQueries.join(', ')}`);
  process.exit(1);
}
console.log(
  `openapi: ${file} is valid OpenAPI ${api.openapi} (${operations} operations); ` +
    `openapi-typescript generated ${types.length} bytes of types`,
);
