// The conformance scenario over @grpc/grpc-js, with stubs that @grpc/proto-loader makes
// from the repository's proto/ at run time (health and reflection v1 from the .proto
// files that grpc-health-check and @grpc/reflection ship).
//
// Usage: node conformance.js ADDRESS RUN_ID WORKDIR
//
// ADDRESS is the sidecar's address as `runcore serve --port-file` writes it
// (tcp://HOST:PORT or unix:///PATH); the client is made from that address alone.
// The scenario is tests/conformance/README.md's. Exits 1 when anything differs.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

if (process.argv.length !== 5) {
  console.error('usage: node conformance.js ADDRESS RUN_ID WORKDIR');
  process.exit(2);
}
const [ADDRESS, RUN_ID, WORKDIR] = process.argv.slice(2);
const PROJECT = 'conformance';
const REPO = path.resolve(__dirname, '..', '..', '..');
const MODULES = path.join(__dirname, 'node_modules');

// int64 fields come back as decimal strings (exact), enums as their names, oneofs name
// their set member (a proto3 `optional` field is a oneof `_name`).
const LOAD = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
function load(file, includeDirs) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...LOAD, includeDirs }));
}
const runcore = load('runcore/v1/runcore.proto', [path.join(REPO, 'proto')]).runcore.v1;
const health = load('health/v1/health.proto', [path.join(MODULES, 'grpc-health-check', 'proto')]).grpc.health.v1;
const reflection = load('grpc/reflection/v1/reflection.proto',
  [path.join(MODULES, '@grpc', 'reflection', 'build', 'proto')]).grpc.reflection.v1;

const failures = [];
function check(ok, what) {
  if (!ok) {
    failures.push(what);
    console.log(`  MISMATCH: ${what}`);
  }
}

// Values in this program: a JS number is a double, a BigInt an int64, plus booleans,
// strings, null, plain objects and arrays.
function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]));
  }
  return a === b;
}
function show(x) {
  return util.inspect(x, { depth: null, breakLength: Infinity });
}
function eq(got, want, what) {
  check(same(got, want), `${what}: got ${show(got)}, want ${show(want)}`);
}

function val(x) {
  if (x === null) return { null_value: true };
  switch (typeof x) {
    case 'boolean': return { bool_value: x };
    case 'bigint': return { int_value: x.toString() };
    case 'number': return { double_value: x };
    case 'string': return { string_value: x };
    default:
      if (Array.isArray(x)) return { list_value: { values: x.map(val) } };
      return { map_value: { fields: vmap(x) } };
  }
}
function vmap(d) {
  return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, val(v)]));
}
function js(v) {
  switch (v.kind) {
    case 'double_value': return v.double_value;
    case 'int_value': return BigInt(v.int_value);
    case 'bool_value': return v.bool_value;
    case 'string_value': return v.string_value;
    case 'map_value': return jsmap(v.map_value.fields);
    case 'list_value': return v.list_value.values.map(js);
    case 'null_value': case undefined: return null;
    default: return `<${v.kind}>`;
  }
}
function jsmap(f) {
  return Object.fromEntries(Object.entries(f || {}).map(([k, v]) => [k, js(v)]));
}
const has = (msg, field) => msg[`_${field}`] === field;

function unary(client, method, req) {
  return new Promise((resolve, reject) => {
    client[method](req, { deadline: Date.now() + 60000 }, (err, res) => {
      if (err) reject(new Error(`${method}: ${grpc.status[err.code]}: ${err.details}`));
      else resolve(res);
    });
  });
}
// A server-streaming or bidi call: writes `requests`, half-closes, collects replies.
function collect(call, requests) {
  return new Promise((resolve, reject) => {
    const out = [];
    call.on('data', (r) => out.push(r));
    call.on('error', (err) => reject(new Error(`${grpc.status[err.code]}: ${err.details}`)));
    call.on('end', () => resolve(out));
    if (requests) {
      for (const r of requests) call.write(r);
      call.end();
    }
  });
}

const CONFIG = {
  lr: 0.001, epochs: 3n, arch: 'mlp',
  optimizer: { name: 'adam', betas: [0.9, 0.999], schedule: { warmup: 100n, cosine: true } },
};

function row(keys, scalars, values, step, commit) {
  const r = {
    scalar_keys: Object.keys(scalars).map((k) => keys.indexOf(k)),
    scalar_values: Object.values(scalars),
    values: vmap(values || {}),
  };
  if (step !== undefined) r.step = String(step);
  if (commit !== undefined) r.commit = commit;
  return r;
}
const dropped = (ds) => ds.map((d) => [d.row_index, Number(d.step), Number(d.current_step)]);

async function scenario(target) {
  const opts = { deadline: Date.now() + 60000 };
  // 1. Health.
  const hc = new health.Health(target, grpc.credentials.createInsecure());
  for (const service of ['', 'runcore.v1.RunService']) {
    eq((await unary(hc, 'Check', { service })).status, 'SERVING', `health '${service}'`);
  }
  hc.close();

  // 2. Reflection v1 lists the services.
  const rc = new reflection.ServerReflection(target, grpc.credentials.createInsecure());
  const replies = await collect(rc.ServerReflectionInfo(opts), [{ list_services: '' }]);
  rc.close();
  eq(replies.length, 1, 'reflection replies');
  const names = replies.flatMap((r) => (r.list_services_response ? r.list_services_response.service : []))
    .map((s) => s.name);
  check(names.includes('runcore.v1.RunService'), `reflection lists runcore.v1.RunService: ${names}`);
  check(names.includes('grpc.health.v1.Health'), `reflection lists grpc.health.v1.Health: ${names}`);

  const c = new runcore.RunService(target, grpc.credentials.createInsecure());
  try {
    await runScenario(c, opts);
  } finally {
    c.close();
  }
}

async function runScenario(c, opts) {
  // 3. Init.
  const init = await unary(c, 'Init', {
    id: RUN_ID, project: PROJECT, name: 'conformance-run', tags: ['conformance'],
    notes: 'any language, unmodified', config: vmap(CONFIG), working_dir: WORKDIR,
    system_metrics: { disabled: true },
  });
  eq(init.run.id, RUN_ID, 'Init run.id');
  eq(init.run.project, PROJECT, 'Init run.project');
  eq(init.run.name, 'conformance-run', 'Init run.name');
  eq(init.run.state, 'RUN_STATE_RUNNING', 'Init run.state');
  eq(init.run.path, `${PROJECT}/${RUN_ID}`, 'Init run.path');
  check(init.run.dir.endsWith(`/${PROJECT}/${RUN_ID}/files`), `Init run.dir: ${init.run.dir}`);
  eq(init.resumed, false, 'Init resumed');
  eq(init.starting_step, '0', 'Init starting_step');
  eq(init.last_seq, '0', 'Init last_seq');

  // 4. DefineMetric.
  let m = (await unary(c, 'DefineMetric', { run_id: RUN_ID, name: 'loss', summary: 'min,max' })).metric;
  eq([m.name, m.summary, m.step_metric], ['loss', ['min', 'max'], ''], 'DefineMetric loss');
  m = (await unary(c, 'DefineMetric', { run_id: RUN_ID, name: 'epoch', hidden: true })).metric;
  eq([m.name, m.hidden], ['epoch', true], 'DefineMetric epoch');
  m = (await unary(c, 'DefineMetric', { run_id: RUN_ID, name: 'val/*', step_metric: 'epoch', summary: 'max' })).metric;
  eq([m.name, m.step_metric, m.step_sync, m.summary], ['val/*', 'epoch', true, ['max']], 'DefineMetric val/*');

  // 5. Unary Log.
  const log = (data, step, commit) => {
    const req = { run_id: RUN_ID, data: vmap(data) };
    if (step !== undefined) req.step = String(step);
    if (commit !== undefined) req.commit = commit;
    return unary(c, 'Log', req);
  };
  eq((await log({ loss: 2.0, note: 'hello', flag: true, count: 7n })).step, '1', 'Log 1 step');
  eq((await log({ partial: 1.0 }, undefined, false)).step, '1', 'Log 2 (commit=false) step');
  eq((await log({ bad: NaN, nested: { x: 1.5, y: { z: 'deep' } } }, undefined, true)).step, '2', 'Log 3 (commit) step');
  eq((await log({ loss: 1.5 }, 5)).step, '5', 'Log 4 (step=5) step');
  eq((await log({ extra: 4.0 }, 5)).step, '5', 'Log 5 (same step) step');
  const r6 = await log({ loss: 9.0 }, 3);
  eq(r6.step, '5', 'Log 6 (smaller step) step');
  eq(dropped(r6.dropped), [[0, 3, 5]], 'Log 6 dropped');
  check(r6.dropped.every((d) => d.reason), 'Log 6 dropped row has a reason');
  const r7 = await log({ none: null, big: 1n << 40n }, 6, true);
  eq(r7.step, '7', 'Log 7 (step=6, commit) step');
  eq(r7.dropped.length, 0, 'Log 7 dropped');

  // 6. LogStream.
  const k1 = ['loss', 'epoch'];
  const k2 = ['val/acc', 'loss', 'epoch'];
  const k3 = ['loss', 'val/loss'];
  const batches = [
    { run_id: RUN_ID, seq: '1', keys: k1, rows: [
      row(k1, { loss: 1.0 }, { phase: 'train' }),
      row(k1, { loss: 0.75 }),
      row(k1, { loss: 0.5, epoch: 0.0 }),
    ] },
    { run_id: RUN_ID, seq: '2', keys: k2, rows: [
      row(k2, { loss: 0.25, epoch: 1.0, 'val/acc': 0.5 }),
      row(k2, { 'val/acc': 0.625 }),
      row(k2, { loss: 0.125 }, { deep: { a: { k: 3n } }, items: ['a', 1n, true] }),
    ] },
    { run_id: RUN_ID, seq: '3', keys: k3, rows: [
      row(k3, { loss: NaN, 'val/loss': 0.375 }),
      row(k3, { loss: 0.0625 }, undefined, 20),
      row(k3, { loss: 0.03125 }, undefined, undefined, true),
      row(k3, { loss: 8.0 }, undefined, 15),
    ] },
  ];
  const acks = await collect(c.LogStream(opts), [...batches, batches[1]]);
  eq(acks.map((a) => [a.run_id, a.seq, a.duplicate]),
    [[RUN_ID, '1', false], [RUN_ID, '2', false], [RUN_ID, '3', false], [RUN_ID, '2', true]], 'LogStream acks');
  eq(acks.slice(0, 3).map((a) => a.step), ['10', '13', '21'], 'LogStream ack steps');
  eq(acks.slice(0, 3).map((a) => dropped(a.dropped)), [[], [], [[3, 15, 21]]], 'LogStream dropped rows');

  // 7. UpdateConfig.
  const uc = await unary(c, 'UpdateConfig', {
    run_id: RUN_ID, config: vmap({ epochs: 5n, extra: { k: 'v' } }), remove: ['arch'],
  });
  const wantCfg = { ...CONFIG, epochs: 5n, extra: { k: 'v' } };
  delete wantCfg.arch;
  eq(jsmap(uc.config), wantCfg, 'UpdateConfig config');

  // 8. UpdateSummary.
  const summ = jsmap((await unary(c, 'UpdateSummary', {
    run_id: RUN_ID, summary: vmap({ best_acc: 0.875, note: 'summary-note' }), remove: ['count'],
  })).summary);
  eq(summ.best_acc, 0.875, 'UpdateSummary best_acc');
  eq(summ.note, 'summary-note', 'UpdateSummary note (explicit wins)');
  check(!('count' in summ), `UpdateSummary removed count: ${Object.keys(summ).sort()}`);
  eq(summ.loss, { min: 0.03125, max: 2.0 }, 'UpdateSummary loss min/max');
  eq(summ['val/acc'], { max: 0.625 }, 'UpdateSummary val/acc max (glob)');
  eq(summ['val/loss'], { max: 0.375 }, 'UpdateSummary val/loss max (glob)');

  // 9. Alert twice.
  const alert = (text) => unary(c, 'Alert', {
    run_id: RUN_ID, title: 'conformance alert', text, level: 'WARN', wait_duration: 600,
  });
  const a1 = await alert('first');
  eq([a1.sent, a1.throttled], [true, false], 'Alert 1 (sent, throttled)');
  const a2 = await alert('second');
  eq([a2.sent, a2.throttled], [false, true], 'Alert 2 (sent, throttled)');
  check(a2.throttled_until > Date.now() / 1000 + 500, `Alert 2 throttled_until ${a2.throttled_until} is ~600 s ahead`);

  // 10. SaveFiles.
  fs.mkdirSync(path.join(WORKDIR, 'out'), { recursive: true });
  fs.writeFileSync(path.join(WORKDIR, 'out', 'result.txt'), 'conformance result\n');
  fs.writeFileSync(path.join(WORKDIR, 'out', 'skip.bin'), 'not matched\n');
  const sf = await unary(c, 'SaveFiles', { run_id: RUN_ID, glob: 'out/*.txt', policy: 'now' });
  eq(sf.saved, ['out/result.txt'], 'SaveFiles saved');

  // 11. Finish.
  const fin = await unary(c, 'Finish', { run_id: RUN_ID, exit_code: 0 });
  eq(fin.run.state, 'RUN_STATE_FINISHED', 'Finish run.state');
  eq(has(fin.run, 'exit_code') ? fin.run.exit_code : 'absent', 0, 'Finish run.exit_code');
  eq(fin.run.step, '21', 'Finish run.step');
  eq(fin.run.history_rows, '12', 'Finish run.history_rows');
  const fsum = jsmap(fin.summary);
  eq(fsum._step, 20n, 'Finish summary _step');
  eq(fsum.best_acc, 0.875, 'Finish summary best_acc');

  // 12. GetRun.
  const got = await unary(c, 'GetRun', { run_id: RUN_ID });
  const run = got.run;
  eq(run.state, 'RUN_STATE_FINISHED', 'GetRun run.state');
  eq(has(run, 'exit_code') ? run.exit_code : 'absent', 0, 'GetRun run.exit_code');
  eq([run.id, run.project, run.name], [RUN_ID, PROJECT, 'conformance-run'], 'GetRun identity');
  eq(run.tags, ['conformance'], 'GetRun tags');
  check(run.start_time > 0 && run.start_time <= run.end_time, `GetRun start ${run.start_time} <= end ${run.end_time}`);
  eq([run.step, run.history_rows], ['21', '12'], 'GetRun (step, history_rows)');
  eq(jsmap(got.config), wantCfg, 'GetRun config');
  eq(got.files, ['out/result.txt'], 'GetRun files');
  eq(got.metrics.map((x) => x.name).sort(), ['epoch', 'loss', 'val/*'], 'GetRun metrics');
  eq(jsmap(got.summary), fsum, 'GetRun summary equals Finish summary');

  // 13. ScanHistory.
  const scan = async (keys) => (await collect(c.ScanHistory({ run_id: RUN_ID, keys }, opts)))
    .flatMap((r) => r.rows);
  const rows = await scan([]);
  eq(rows.map((r) => Number(r.step)), [0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20], 'ScanHistory steps');
  const byStep = Object.fromEntries(rows.map((r) => [Number(r.step), jsmap(r.values)]));
  if (rows.length === 12) {
    eq(byStep[0].count, 7n, 'row 0 count (int)');
    eq(byStep[0].flag, true, 'row 0 flag (bool)');
    eq(byStep[0].note, 'hello', 'row 0 note (string)');
    eq(byStep[1].bad, NaN, 'row 1 bad (NaN)');
    eq(byStep[1].nested, { x: 1.5, y: { z: 'deep' } }, 'row 1 nested');
    eq(byStep[1].partial, 1.0, 'row 1 partial (commit=false joined)');
    eq([byStep[5].loss, byStep[5].extra], [1.5, 4.0], 'row 5 merged');
    eq(['none' in byStep[6], byStep[6].none, byStep[6].big], [true, null, 1n << 40n], 'row 6 null and int64');
    eq(byStep[11].epoch, 1.0, 'row 11 epoch (step_sync)');
    eq(byStep[12].items, ['a', 1n, true], 'row 12 list');
    eq(byStep[13].loss, NaN, 'row 13 loss (NaN)');
    eq(byStep[20].loss, 0.03125, 'row 20 loss (merged into the pending row)');
  }
  const only = await scan(['val/acc']);
  eq(only.map((r) => Number(r.step)), [10, 11], 'ScanHistory keys=[val/acc] steps');
}

async function main() {
  // grpc-js takes unix:///path as is, and host:port for TCP.
  const target = ADDRESS.startsWith('tcp://') ? ADDRESS.slice('tcp://'.length) : ADDRESS;
  const version = JSON.parse(fs.readFileSync(path.join(MODULES, '@grpc', 'grpc-js', 'package.json'))).version;
  console.log(`node @grpc/grpc-js ${version}: ${RUN_ID} at ${target}`);
  try {
    await scenario(target);
  } catch (err) {
    failures.push(`RPC failed: ${err.message}`);
    console.log(`  RPC FAILED: ${err.message}`);
  }
  if (failures.length) {
    console.log(`FAIL ${RUN_ID}: ${failures.length} mismatch(es)`);
    process.exit(1);
  }
  console.log(`PASS ${RUN_ID}`);
}

main();
