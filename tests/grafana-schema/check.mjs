#!/usr/bin/env node
// Type-checks Grafana dashboard JSON files against Grafana's published dashboard types (@grafana/schema).
//
//   node tests/grafana-schema/check.mjs [NODE_MODULES_DIR] DASHBOARD.json...
//
// For each dashboard it writes a TypeScript file that assigns the dashboard, as an object literal (an
// imported .json would widen every string to `string` and skip the excess-property checks), to
// `CheckedDashboard`: @grafana/schema's `Dashboard` with panel options, queries and annotations typed by
// Grafana's published types (see dashboard-types.ts), and runs `tsc --noEmit --strict` over them.
// Exits with tsc's status (0: every dashboard matches); tsc's errors name the dashboard (`NAME.ts(line,col)`).
// NODE_MODULES_DIR (default .venv/npm/node_modules) must hold @grafana/schema,
// @grafana/grafana-foundation-sdk and typescript (scripts/test installs them).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let modules = resolve(here, '../../.venv/npm/node_modules');
if (args.length > 0 && !args[0].endsWith('.json')) {
  modules = resolve(args.shift());
}
if (args.length === 0) {
  console.error('usage: check.mjs [NODE_MODULES_DIR] DASHBOARD.json...');
  process.exit(2);
}
for (const wanted of [
  '@grafana/schema/package.json',
  '@grafana/grafana-foundation-sdk/package.json',
  'typescript/bin/tsc',
]) {
  if (!existsSync(join(modules, wanted))) {
    console.error(`check.mjs: ${join(modules, wanted)} is missing: run scripts/test, which installs it`);
    process.exit(3);
  }
}

// TypeScript resolves '@grafana/schema' from the checked files' directory upwards: work beside node_modules.
const work = mkdtempSync(join(dirname(modules), 'grafana-schema-check-'));
try {
  copyFileSync(join(here, 'dashboard-types.ts'), join(work, 'dashboard-types.ts'));
  const files = ['dashboard-types.ts'];
  for (const path of args) {
    const text = readFileSync(path, 'utf8');
    const literal = JSON.stringify(JSON.parse(text), null, 2);
    const name = basename(path).replace(/\.json$/, '') + '.ts';
    writeFileSync(
      join(work, name),
      `// Generated from ${path} by tests/grafana-schema/check.mjs.\n` +
        `import type { CheckedDashboard } from './dashboard-types';\n` +
        `export const dashboard: CheckedDashboard = ${literal};\n`,
    );
    files.push(name);
  }
  writeFileSync(
    join(work, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        module: 'esnext',
        moduleResolution: 'bundler',
        skipLibCheck: true,
        types: [],
        typeRoots: [],
      },
      files,
    }),
  );
  try {
    execFileSync(process.execPath, [join(modules, 'typescript/bin/tsc'), '-p', work, '--pretty', 'false'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    console.log(`${args.length} dashboard(s) match @grafana/schema's types`);
  } catch (e) {
    process.stdout.write(String(e.stdout ?? ''));
    process.stderr.write(String(e.stderr ?? ''));
    process.exitCode = e.status ?? 1;
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
