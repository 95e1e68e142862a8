// Builds src/index.js into plugin.wasm against the connector world.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./src/index.js'),
  witPath: here('../../wit'),
  worldName: 'connector',
  // Keep fetch (wasi:http outgoing); this connector serves no HTTP itself.
  disableFeatures: ['fetch-event'],
});
await writeFile(here('./plugin.wasm'), component);
console.log(`plugins/js-egress/plugin.wasm (${Math.round(component.length / 1024)} KiB)`);
