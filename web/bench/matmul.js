// WebGPU matmul candidates, timed in the page (driven by matmul.mjs): out[M,N] = a[M,K] @ w[K,N]
// + bias[N], float32. `tiled(R, CV)` writes the same WGSL as model/src/kernels/linear.rs for a
// block of R rows × 4·CV columns per invocation; `naive` computes one output per invocation.
const naive = () => ({
  per: [1, 1],
  wgsl: `
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> sizes: array<u32>;
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let m = sizes[0]; let k = sizes[1]; let n = sizes[2];
  if (id.y >= m || id.x >= n) { return; }
  var acc = bias[id.x];
  for (var i = 0u; i < k; i++) { acc = fma(a[id.y * k + i], w[i * n + id.x], acc); }
  out[id.y * n + id.x] = acc;
}`,
});

const tiled = (R, CV) => {
  const body = [];
  for (let i = 0; i < R; i++) {
    body.push(`let a_row${i} = min(row0 + ${i}u, m - 1u) * kv;`);
    for (let j = 0; j < CV; j++) body.push(`var acc${i}_${j} = vec4<f32>(0.0);`);
  }
  body.push('for (var kk = 0u; kk < kv; kk++) {');
  for (let i = 0; i < R; i++) body.push(`    let a${i} = a[a_row${i} + kk];`);
  for (let q = 0; q < 4; q++) {
    body.push(`    let w_row${q} = (kk * 4u + ${q}u) * nv;`);
    for (let j = 0; j < CV; j++) body.push(`    let w${q}_${j} = w[w_row${q} + min(col0 + ${j}u, nv - 1u)];`);
  }
  for (let i = 0; i < R; i++) {
    ['x', 'y', 'z', 'w'].forEach((lane, q) => {
      for (let j = 0; j < CV; j++) body.push(`    acc${i}_${j} = fma(vec4<f32>(a${i}.${lane}), w${q}_${j}, acc${i}_${j});`);
    });
  }
  body.push('}');
  for (let j = 0; j < CV; j++) {
    body.push(`if (col0 + ${j}u < nv) {`, `    let b${j} = bias[col0 + ${j}u];`);
    for (let i = 0; i < R; i++) body.push(`    if (row0 + ${i}u < m) { out[(row0 + ${i}u) * nv + col0 + ${j}u] = acc${i}_${j} + b${j}; }`);
    body.push('}');
  }
  return {
    per: [R, 4 * CV],
    wgsl: `
@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> sizes: array<u32>;
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let m = sizes[0]; let kv = sizes[1] / 4u; let nv = sizes[2] / 4u;
    let col0 = id.x * ${CV}u; let row0 = id.y * ${R}u;
    if (row0 >= m || col0 >= nv) { return; }
    ${body.join('\n    ')}
}`,
  };
};

const random = (n) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

async function time(device, name, kernel, [M, N, K], reps) {
  const [A, W, B] = [random(M * K), random(K * N), random(N)];
  const storage = (data) => {
    const buffer = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    new data.constructor(buffer.getMappedRange()).set(data);
    buffer.unmap();
    return buffer;
  };
  const out = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const buffers = [storage(A), storage(W), storage(B), out, storage(new Uint32Array([M, K, N, 0]))];
  const module = device.createShaderModule({ code: kernel.wgsl });
  for (const m of (await module.getCompilationInfo()).messages) if (m.type === 'error') throw new Error(`${name}: ${m.message}`);
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const run = (copy) => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(N / kernel.per[1] / 8), Math.ceil(M / kernel.per[0] / 8));
    pass.end();
    if (copy) encoder.copyBufferToBuffer(out, 0, read, 0, M * N * 4);
    device.queue.submit([encoder.finish()]);
  };
  run(true); // compile, warm up, and check 100 entries against the CPU
  await read.mapAsync(GPUMapMode.READ);
  const C = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  let error = 0;
  for (let t = 0; t < 100; t++) {
    const [i, j] = [t < 10 ? M - 1 : Math.floor(Math.random() * M), Math.floor(Math.random() * N)];
    let s = B[j];
    for (let q = 0; q < K; q++) s += A[i * K + q] * W[q * N + j];
    error = Math.max(error, Math.abs(s - C[i * N + j]));
  }
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) run(false);
  await device.queue.onSubmittedWorkDone();
  const ms = (performance.now() - t0) / reps;
  return { kernel: name, M, N, K, ms: +ms.toFixed(1), gflops: +(2 * M * N * K / ms / 1e6).toFixed(2), maxAbsError: error };
}

window.runMatmul = async ({ shapes, reps }) => {
  const device = await (await navigator.gpu.requestAdapter()).requestDevice();
  const kernels = [['naive', naive()], ...[[4, 1], [8, 2], [8, 4], [16, 2]].map(([r, c]) => [`tiled ${r}x${4 * c}`, tiled(r, c)])];
  const results = [];
  for (const [name, kernel] of kernels) for (const shape of shapes) results.push(await time(device, name, kernel, shape, reps));
  return results;
};
