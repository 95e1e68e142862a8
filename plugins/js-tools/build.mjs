// Builds one JavaScript connector into a component against the connector
// world, with componentize-js installed once for every plugin (by
// scripts/build-plugins.sh, which sets AIRLOCK_JS_TOOLS to that install).
//
//   AIRLOCK_JS_TOOLS=DIR node plugins/js-tools/build.mjs plugins/NAME OUT.wasm
//
// The plugin's entry point is src/index.js. It may import modules by
// relative path anywhere under plugins/ (the SDK is
// `../../sdk-js/airlock-sdk.js`): the build runs with plugins/ as its working
// directory, which componentize-js maps as the component's source tree.
// Options come from the plugin's package.json, key `airlock`:
// `disableFeatures` (default: every optional feature but stdio, clocks and
// random, so no wasi:http unless a plugin asks for it with fetch).
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const [pluginArg, outArg] = process.argv.slice(2);
const tools = process.env.AIRLOCK_JS_TOOLS;
if (!pluginArg || !outArg || !tools) {
  console.error('usage: AIRLOCK_JS_TOOLS=DIR node build.mjs PLUGIN_DIR OUT.wasm');
  process.exit(2);
}
const plugins = resolve(fileURLToPath(new URL('..', import.meta.url)));
const pluginDir = resolve(pluginArg);
const out = resolve(outArg);
const entry = join(tools, 'node_modules/@bytecodealliance/componentize-js/src/componentize.js');
if (!existsSync(entry)) {
  console.error(`componentize-js is not installed in ${tools}`);
  process.exit(1);
}
const { componentize } = await import(pathToFileURL(entry).href);

let options = {};
const packageJson = join(pluginDir, 'package.json');
if (existsSync(packageJson)) {
  options = JSON.parse(await readFile(packageJson, 'utf8')).airlock ?? {};
}

process.chdir(plugins);
const { component } = await componentize({
  sourcePath: join(pluginDir, 'src/index.js'),
  witPath: join(plugins, '../wit'),
  worldName: 'connector',
  disableFeatures: options.disableFeatures ?? ['http', 'fetch-event'],
});
await writeFile(out, component);
