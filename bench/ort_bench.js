// ONNX Runtime's side of the benchmark (npm onnxruntime-node, its CPU library inside the
// package): runs MODEL on the float32 .npy input, warm-up then a median over at least 10
// runs (up to 2 s), writes output 0 as .npy beside the model, and prints JSON.
// usage: node bench/ort_bench.js MODEL.onnx INPUT.npy OUT.npy THREADS all|disabled
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) { // little-endian float32, C order: what bench/models.py writes
  const buf = fs.readFileSync(path);
  const hlen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + hlen);
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True"))
    throw new Error(path + ': expected a C-order float32 array');
  const dims = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + 10 + hlen, buf.byteOffset + buf.length));
  return {dims, data};
}

function writeNpy(path, dims, data) {
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims.join(', ') + (dims.length === 1 ? ',' : '') + '), }';
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - total % 64) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1, head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function main() {
  const [model, input, out, threads, level] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: level,
  });
  const x = readNpy(input);
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', x.data, x.dims)};
  let result;
  for (let i = 0; i < 3; i++)
    result = await session.run(feeds);
  const times = [];
  const start = process.hrtime.bigint();
  while (times.length < 10 || (Number(process.hrtime.bigint() - start) / 1e6 < 2000 && times.length < 200)) {
    const t = process.hrtime.bigint();
    result = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  const y = result[session.outputNames[0]];
  writeNpy(out, y.dims, y.data);
  console.log(JSON.stringify({median_ms: times[Math.floor(times.length / 2)], runs: times.length}));
}

main().catch(e => { console.error('ort_bench: ' + e.message); process.exit(1); });
