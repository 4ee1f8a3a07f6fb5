// Test accuracy of an ONNX classifier in ONNX Runtime on an IDX dataset (the exported
// model of `kiln train --export`): images scaled to [0, 1] and standardized with the
// training set's mean and deviation, exactly as kiln train does.
//   node bench/ort_accuracy.js MODEL.onnx DATA_DIR     (onnxruntime-node in bench/node_modules
//                                                       or $ORT_NODE_MODULES)
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const modules = process.env.ORT_NODE_MODULES || path.join(__dirname, 'node_modules');
const ort = require(path.join(modules, 'onnxruntime-node'));

function idx(dir, name) {
  let file = path.join(dir, name);
  const data = fs.existsSync(file) ? fs.readFileSync(file) : zlib.gunzipSync(fs.readFileSync(file + '.gz'));
  const rank = data[3];
  const dims = [];
  for (let i = 0; i < rank; i++) dims.push(data.readUInt32BE(4 + 4 * i));
  return { dims, data: data.subarray(4 + 4 * rank) };
}

async function main() {
  const [model, dir] = process.argv.slice(2);
  const train = idx(dir, 'train-images-idx3-ubyte');
  let sum = 0, sq = 0;
  for (const v of train.data) { const x = v / 255; sum += x; sq += x * x; }
  const mean = sum / train.data.length, std = Math.sqrt(sq / train.data.length - mean * mean);
  const images = idx(dir, 't10k-images-idx3-ubyte'), labels = idx(dir, 't10k-labels-idx1-ubyte');
  const n = images.dims[0], pixels = images.data.length / n;
  const session = await ort.InferenceSession.create(model);
  const input = session.inputNames[0];
  const batch = 100;
  let right = 0;
  for (let at = 0; at < n; at += batch) {
    const count = Math.min(batch, n - at);
    const x = new Float32Array(count * pixels);
    for (let i = 0; i < count * pixels; i++) x[i] = (images.data[at * pixels + i] / 255 - mean) / std;
    const out = await session.run({ [input]: new ort.Tensor('float32', x, [count, 1, 28, 28]) });
    const logits = out[session.outputNames[0]].data, classes = logits.length / count;
    for (let b = 0; b < count; b++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[b * classes + c] > logits[b * classes + best]) best = c;
      right += best === labels.data[at + b];
    }
  }
  console.log(`onnxruntime ${require(path.join(modules, 'onnxruntime-node/package.json')).version}: test_accuracy=${(right / n).toFixed(4)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
