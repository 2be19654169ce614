// fs_read: reads N small files at once (fs.promises.readFile, gathered with
// Promise.all) and checks their total size. The files (SIZE bytes each) are
// made first in DIR (or a fresh temporary folder, removed after), outside
// the timed part.
//   usage: node bench/peers/fs_read/node.mjs [N=10000] [SIZE=1024] [DIR]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const N = Number(process.argv[2] ?? 10000);
const SIZE = Number(process.argv[3] ?? 1024);
let dir = process.argv[4];
const made = dir === undefined;
if (made) dir = fs.mkdtempSync(path.join(os.tmpdir(), "fs-read-"));
const data = Buffer.alloc(SIZE, "r");
const names = [];
for (let i = 1; i <= N; i++) {
  names.push(path.join(dir, "f" + String(i).padStart(5, "0")));
  if (made) fs.writeFileSync(names[i - 1], data);
}
const t0 = performance.now();
const got = await Promise.all(names.map((n) => fs.promises.readFile(n)));
const wall = (performance.now() - t0) / 1000;
let total = 0;
for (const b of got) total += b.length;
if (total !== N * SIZE) throw new Error("wrong total size");
if (made) fs.rmSync(dir, { recursive: true });
console.log(`RESULT workload=fs_read peer=node n=${N} wall_s=${wall.toFixed(4)} ` +
  `size=${SIZE} files_per_s=${Math.round(N / wall)}`);
