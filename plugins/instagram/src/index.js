// Instagram (JavaScript, componentize-js): the shop's professional
// Instagram account as a storefront feed. The `media` feed refreshes the
// long-lived token when due, reads the latest media and publishes
// `instagram-feed.json` and `instagram-feed.html` (a fragment the
// storefront includes) when they changed; the `token` feed only refreshes.
//
// Build: scripts/build-plugins.sh (plugins/js-tools/build.mjs). Try it:
//
//   airlock run plugins/instagram --feed media --tenant acme \
//       --config-file secrets.toml        # access_token = "IGAA…"
//
// Docs: docs/integrations/instagram.md.

import * as artifacts from 'airlock:connector/artifacts@0.1.0';
import * as log from 'airlock:connector/log@0.1.0';
import * as config from 'airlock:connector/config@0.1.0';
import * as http from 'airlock:connector/http@0.1.0';
import * as storage from 'airlock:connector/storage@0.1.0';

import { createSdk } from '../../sdk-js/airlock-sdk.js';
import { connect, runFeed } from './connector.js';

const sdk = createSdk({ artifacts, log, config, http });
const secret = (key) => config.getSecret(key);

export function run(ctx) {
  return runFeed({ sdk, storage, secret }, ctx);
}

export function check() {
  // `result<_, string>`: returning is ok; throwing a string is err.
  const problem = connect({ sdk, storage, secret }, { check: true });
  if (problem) throw problem;
}
