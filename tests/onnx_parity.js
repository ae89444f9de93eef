// Runs an ONNX policy of `ml3 export --format onnx` in ONNX Runtime (the npm
// package onnxruntime-node), the way a user's Node or web stack would, for
// tests/deploy_test.cpp (Onnx.*) and the latency figure of docs/results.md.
//
//   node tests/onnx_parity.js MODEL.onnx OBS.f32 ROWS OBS_DIM OUT.f32
//     reads ROWS x OBS_DIM float32 observations, runs them as one batch,
//     writes the ROWS x act_dim float32 actions, prints one JSON line.
//   node tests/onnx_parity.js MODEL.onnx --latency CALLS OBS_DIM
//     times CALLS single-observation calls (tensor creation + session.run +
//     reading the output), one intra-op thread; prints one JSON line.
// The module is found through NODE_PATH (the test sets it to the checkout's
// .node/node_modules, where tools/setup.sh installs it).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const argv = process.argv.slice(2);
  const session = await ort.InferenceSession.create(argv[0], {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const input = session.inputNames[0], output = session.outputNames[0];
  if (argv[1] === '--latency') {
    const calls = parseInt(argv[2], 10), obsDim = parseInt(argv[3], 10);
    const obs = new Float32Array(obsDim).fill(0.1);
    for (let i = 0; i < 200; ++i) await session.run({[input]: new ort.Tensor('float32', obs, [1, obsDim])});
    const us = [];
    for (let i = 0; i < calls; ++i) {
      obs[i % obsDim] = (i % 7) * 0.05;
      const t0 = process.hrtime.bigint();
      const out = await session.run({[input]: new ort.Tensor('float32', obs, [1, obsDim])});
      const a0 = out[output].data[0];
      const t1 = process.hrtime.bigint();
      if (!Number.isFinite(a0)) throw new Error('non-finite action');
      us.push(Number(t1 - t0) / 1000);
    }
    us.sort((a, b) => a - b);
    const q = (p) => us[Math.min(us.length - 1, Math.floor(p * us.length))];
    console.log(JSON.stringify({calls, p50_us: q(0.5), p99_us: q(0.99), min_us: us[0], ort_version: ort.env.versions.common}));
    return;
  }
  const rows = parseInt(argv[2], 10), obsDim = parseInt(argv[3], 10);
  const buf = fs.readFileSync(argv[1]);
  if (buf.length !== rows * obsDim * 4) throw new Error(`${argv[1]}: ${buf.length} bytes, expected ${rows * obsDim * 4}`);
  const obs = new Float32Array(buf.buffer, buf.byteOffset, rows * obsDim);
  const out = await session.run({[input]: new ort.Tensor('float32', obs, [rows, obsDim])});
  const actions = out[output];
  fs.writeFileSync(argv[4], Buffer.from(actions.data.buffer, actions.data.byteOffset, actions.data.byteLength));
  console.log(JSON.stringify({input, output, dims: actions.dims, ort_version: ort.env.versions.common}));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
