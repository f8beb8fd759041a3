// Exports JSON Schemas (draft 2020-12) for the Remnawave routes and webhooks CyberVPN uses, taken from the
// official zod contract `@remnawave/backend-contract`. The package is AGPL: it is installed at test time into
// target/ and never committed; only this script and the lock file are ours.
//
// Usage: node export.mjs <output-dir>
//
// Each route gets one file `<METHOD> <route>` -> `<METHOD>_<route with / and {} replaced>.json` holding
// { method, route, command, contractRoute, requestBody, response }; `requestBody` / `response` are null when the
// contract declares none (for example DELETE /api/users/{id} answers 204 with no body). `index.json` lists the
// routes, the webhook schemas and the versions used.
//
// Conversion choices (why, not what):
// - io "input": the wire JSON is what a zod parse consumes, so dates are ISO strings (not the Date a transform
//   outputs) and fields with a default are optional.
// - every plain z.object() is made strict (additionalProperties: false) in both directions. The panel strips
//   unknown request keys silently, so a misspelt field we send would be lost without an error; and a field our fake
//   sends that the real panel does not would let our client grow a dependency on it.
// - refinements (`exactly one of id, shortUuid, username`) are not representable and are left to the fake.

import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The contract is CommonJS; load zod through require too so both share one zod instance and registry.
const require = createRequire(import.meta.url);
const { z } = require('zod');
const contract = require('@remnawave/backend-contract');
const contractVersion = require('@remnawave/backend-contract/package.json').version;
const zodVersion = require('zod/package.json').version;

/** Our route template -> the contract command that defines it. */
const ROUTES = [
    ['POST', '/api/users', 'CreateUserCommand'],
    ['GET', '/api/users', 'GetUsersCommand'],
    ['PATCH', '/api/users', 'UpdateUserCommand'],
    ['GET', '/api/users/stream', 'GetUsersStreamCommand'],
    ['POST', '/api/users/resolve', 'ResolveUserCommand'],
    ['GET', '/api/users/by-username/{username}', 'GetUserByUsernameCommand'],
    ['GET', '/api/users/by-short-uuid/{shortUuid}', 'GetUserByShortUuidCommand'],
    ['GET', '/api/users/{id}', 'GetUserByIdCommand'],
    ['DELETE', '/api/users/{id}', 'DeleteUserCommand'],
    ['POST', '/api/users/{id}/actions/extend', 'ExtendUserCommand'],
    ['POST', '/api/users/{id}/actions/enable', 'EnableUserCommand'],
    ['POST', '/api/users/{id}/actions/disable', 'DisableUserCommand'],
    ['POST', '/api/users/{id}/actions/reset-traffic', 'ResetUserTrafficCommand'],
    ['POST', '/api/users/{id}/actions/revoke', 'RevokeUserSubscriptionCommand'],
    ['GET', '/api/sub/{shortUuid}/info', 'GetSubscriptionInfoByShortUuidCommand'],
    ['GET', '/api/nodes', 'GetNodesCommand'],
    ['GET', '/api/nodes/{uuid}', 'GetNodeCommand'],
    ['POST', '/api/nodes/{uuid}/actions/restart', 'RestartNodeCommand'],
    ['POST', '/api/nodes/{uuid}/actions/enable', 'EnableNodeCommand'],
    ['POST', '/api/nodes/{uuid}/actions/disable', 'DisableNodeCommand'],
    ['GET', '/api/internal-squads', 'GetInternalSquadsCommand'],
    ['GET', '/api/system/stats', 'GetStatsCommand'],
    ['GET', '/api/system/stats/bandwidth', 'GetBandwidthStatsCommand'],
    ['GET', '/api/system/metadata', 'GetMetadataCommand'],
    ['GET', '/api/system/health', 'GetRemnawaveHealthCommand'],
];

/** Webhook scope -> the contract schema of its body. */
const WEBHOOKS = [
    ['user', 'RemnawaveWebhookUserEvents'],
    ['node', 'RemnawaveWebhookNodeEvents'],
];

function strictObjects(ctx) {
    const def = ctx.zodSchema._zod.def;
    if (def.type === 'object' && !def.catchall && ctx.jsonSchema.type === 'object') {
        ctx.jsonSchema.additionalProperties = false;
    }
}

function toSchema(zodSchema, where) {
    const schema = z.toJSONSchema(zodSchema, {
        target: 'draft-2020-12',
        io: 'input',
        unrepresentable: 'any',
        override: strictObjects,
    });
    if (JSON.stringify(schema).includes('"allOf"')) {
        // Strict members of an allOf reject each other's keys; fail rather than emit a schema nothing satisfies.
        throw new Error(`${where}: the schema has an allOf; review strictObjects before using it`);
    }
    return schema;
}

/** `/api/users/:userId/` and `/api/users/{id}` both become `/api/users/{}`. */
function shape(route) {
    return route.replace(/\/+$/, '').replace(/:[A-Za-z]+|\{[A-Za-z]+\}/g, '{}');
}

function fileName(key) {
    return key.replace(/[^A-Za-z0-9-]+/g, '_') + '.json';
}

const out = process.argv[2];
if (!out) {
    console.error('usage: node export.mjs <output-dir>');
    process.exit(2);
}
mkdirSync(join(out, 'routes'), { recursive: true });
mkdirSync(join(out, 'webhooks'), { recursive: true });

const problems = [];
const index = {
    package: '@remnawave/backend-contract',
    version: contractVersion,
    zod: zodVersion,
    routes: {},
    webhooks: {},
};

for (const [method, route, name] of ROUTES) {
    const key = `${method} ${route}`;
    const command = contract[name];
    if (!command || !command.endpointDetails) {
        problems.push(`${key}: the contract has no ${name}`);
        continue;
    }
    const contractMethod = command.endpointDetails.REQUEST_METHOD.toUpperCase();
    const contractRoute = command.TSQ_url;
    if (contractMethod !== method || shape(contractRoute) !== shape(route)) {
        problems.push(`${key}: ${name} is ${contractMethod} ${contractRoute} in the contract`);
        continue;
    }
    const entry = {
        method,
        route,
        command: name,
        contractRoute,
        requestBody: command.RequestBodySchema ? toSchema(command.RequestBodySchema, `${key} request`) : null,
        response: command.ResponseSchema ? toSchema(command.ResponseSchema, `${key} response`) : null,
    };
    const file = fileName(key);
    writeFileSync(join(out, 'routes', file), JSON.stringify(entry, null, 1) + '\n');
    index.routes[key] = `routes/${file}`;
}

for (const [scope, name] of WEBHOOKS) {
    const schema = contract[name];
    if (!schema) {
        problems.push(`webhook ${scope}: the contract has no ${name}`);
        continue;
    }
    const file = `${scope}.json`;
    writeFileSync(join(out, 'webhooks', file), JSON.stringify(toSchema(schema, `webhook ${scope}`), null, 1) + '\n');
    index.webhooks[scope] = `webhooks/${file}`;
}

if (problems.length > 0) {
    console.error(`contract drift in @remnawave/backend-contract ${contractVersion}:\n  ${problems.join('\n  ')}`);
    process.exit(1);
}
writeFileSync(join(out, 'index.json'), JSON.stringify(index, null, 1) + '\n');
console.log(
    `exported ${Object.keys(index.routes).length} routes and ${Object.keys(index.webhooks).length} webhook schemas ` +
        `from @remnawave/backend-contract ${contractVersion} (zod ${zodVersion}) to ${out}`,
);
