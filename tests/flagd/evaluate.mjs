// Resolves one flag of a flagd flag definition file with the real OpenFeature flagd evaluator
// (@openfeature/flagd-core, the in-process provider's core), for N distinct targeting keys
// `user-0` .. `user-{N-1}`, and prints what it resolved as JSON on stdout:
//
//   {"variants": {"current": 1890, "candidate": 110}, "values": {"gpt-4o": 1890, ...},
//    "reasons": {"TARGETING_MATCH": 2000}, "errors": {},
//    "without_key": {"variant": "current", "reason": "DEFAULT", ...},
//    "by_user": ["current", "candidate", ...]}
//
// `without_key` is the resolution for a context without a targeting key: a split has nothing to
// bucket by, so flagd serves the flag's default variant.
//
// Usage: node evaluate.mjs FILE KEY N
// The file is loaded with strict schema validation: a file flagd's schema rejects fails here.
// Used by tests/it/flagd.rs; `npm ci --prefix tests/flagd` installs the evaluator.
import { readFileSync } from 'node:fs';
import { FlagdCore, MemoryStorage } from '@openfeature/flagd-core';

const [file, key, count] = process.argv.slice(2);
const n = Number.parseInt(count ?? '', 10);
if (!file || !key || !Number.isInteger(n) || n < 1) {
  console.error('usage: node evaluate.mjs FILE KEY N');
  process.exit(2);
}

const silent = { error() {}, warn() {}, info() {}, debug() {} };
const storage = new MemoryStorage(silent);
// strictValidation: reject what flagd's JSON schema rejects instead of logging it at debug level.
storage.setConfigurations(readFileSync(file, 'utf8'), true);
const core = new FlagdCore(storage, silent);

const tally = { variants: {}, values: {}, reasons: {}, errors: {}, by_user: [] };
const bump = (map, k) => {
  map[k] = (map[k] ?? 0) + 1;
};
for (let i = 0; i < n; i++) {
  const r = core.resolveStringEvaluation(key, '<code default>', { targetingKey: `user-${i}` }, silent);
  bump(tally.variants, r.variant ?? '<none>');
  tally.by_user.push(r.variant ?? null);
  bump(tally.values, r.value);
  bump(tally.reasons, r.reason);
  if (r.errorCode) bump(tally.errors, `${r.errorCode}: ${r.errorMessage ?? ''}`);
}
const { variant, value, reason, errorCode } = core.resolveStringEvaluation(key, '<code default>', {}, silent);
tally.without_key = { variant: variant ?? null, value, reason, errorCode: errorCode ?? null };
console.log(JSON.stringify(tally));
