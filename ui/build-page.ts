/**
 * Builds the web view: bundles ui/page/main.ts (with uPlot and the styles)
 * with esbuild and inlines script and styles into one index.html, whose
 * Content-Security-Policy allows exactly that script and style by hash.
 * One self-contained file needs no CDN and no second request.
 *
 * `tsx ui/build-page.ts <dir>` writes <dir>/index.html (npm run build: dist/ui).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { UI_PAGE_FILE } from '../contract/ui-page.js';

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url));

/** The built page. */
export interface BuiltPage {
  html: string;
  /** Bytes of the inlined script and styles. */
  scriptBytes: number;
  styleBytes: number;
}

const hashOf = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Bundles the page and returns its one HTML file. */
export async function buildPage(): Promise<BuiltPage> {
  const result = await build({
    entryPoints: [join(PAGE_DIR, 'main.ts')],
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['chrome109', 'firefox115', 'safari16'],
    platform: 'browser',
    write: false,
    outdir: '/ui-out',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const script = result.outputFiles.find((f) => f.path.endsWith('.js'))?.text;
  const style = result.outputFiles.find((f) => f.path.endsWith('.css'))?.text;
  if (script === undefined || style === undefined) {
    throw new Error(`esbuild did not produce a script and a stylesheet from ${PAGE_DIR}main.ts`);
  }
  // Inlined text must not close its element early.
  if (/<\/script/i.test(script) || /<\/style/i.test(style)) {
    throw new Error('the bundled page contains </script or </style and cannot be inlined');
  }
  const template = readFileSync(join(PAGE_DIR, 'index.html'), 'utf8');
  const fills: [string, string][] = [
    ['{{SCRIPT_HASH}}', hashOf(script)],
    ['{{STYLE_HASH}}', hashOf(style)],
    ['/* STYLE */', style],
    ['/* SCRIPT */', script],
  ];
  let html = template;
  for (const [placeholder, text] of fills) {
    // Each placeholder exactly once, or the policy's hashes would not match what runs.
    if (html.split(placeholder).length !== 2) {
      throw new Error(`${PAGE_DIR}index.html must hold ${placeholder} exactly once`);
    }
    html = html.replace(placeholder, () => text);
  }
  return { html, scriptBytes: script.length, styleBytes: style.length };
}

/** Builds the page into `dir` as the file the CLI looks for. */
export async function writePage(dir: string): Promise<string> {
  const page = await buildPage();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, UI_PAGE_FILE);
  writeFileSync(file, page.html);
  return file;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: tsx ui/build-page.ts <output directory>');
    process.exit(2);
  }
  writePage(dir).then(
    (file) => console.error(`ui: wrote ${file}`),
    (err: unknown) => {
      console.error(`ui: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
