// The console is built into the Python package (src/tollway/admin/console/), which serves it
// at /ui on the admin port: no Node and nothing from a CDN where Tollway runs.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import preact from "@preact/preset-vite";
import { defineConfig, type Plugin } from "vite";

// What the build is made from. Its digest goes into the build (sources.json) so that a test
// can tell a committed build that no longer matches its sources (tests/unit/admin).
const SOURCES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "src"];

function files(path: string): string[] {
  return statSync(path).isDirectory()
    ? readdirSync(path).flatMap((name) => files(join(path, name)))
    : [path];
}

export function sourcesDigest(root: string): string {
  const hash = createHash("sha256");
  const paths = SOURCES.flatMap((entry) => files(join(root, entry)))
    .map((path) => relative(root, path).split("\\").join("/"))
    .sort();
  for (const path of paths) {
    hash.update(path + "\0");
    hash.update(readFileSync(join(root, path)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

function recordSources(): Plugin {
  return {
    name: "tollway-record-sources",
    generateBundle() {
      this.emitFile({
        type: "asset",
        fileName: "sources.json",
        source: JSON.stringify({ sha256: sourcesDigest(__dirname) }) + "\n",
      });
    },
  };
}

export default defineConfig({
  base: "/ui/",
  plugins: [preact(), recordSources()],
  build: {
    outDir: "../src/tollway/admin/console",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a gateway's admin port (TOLLWAY_ADMIN, default 127.0.0.1:8081).
    proxy: { "/admin": process.env.TOLLWAY_ADMIN ?? "http://127.0.0.1:8081" },
  },
});
