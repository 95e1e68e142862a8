// Sitemap (JavaScript, componentize-js): the shop's product and category
// pages as sitemap.xml (sitemaps.org 0.9), split into a sitemap index and
// parts past 50,000 URLs or 50 MB. Published as artifacts, served at live
// URLs by `airlock serve`.
//
// Build: scripts/build-plugins.sh (plugins/js-tools/build.mjs). Try it on a
// tenant's records:
//
//   airlock run plugins/sitemap --feed sitemap --tenant acme \
//       --config base_url=https://shop.example --grant-data
//
// It walks categories, then products, a page at a time, and streams the
// files in ~64 KiB chunks: memory does not grow with the catalogue.

import * as records from 'airlock:connector/records@0.1.0';
import * as artifacts from 'airlock:connector/artifacts@0.1.0';
import * as log from 'airlock:connector/log@0.1.0';
import * as config from 'airlock:connector/config@0.1.0';

import { createSdk, fail, infoOutcome, ok, outcomeFor } from '../../sdk-js/airlock-sdk.js';
import { publish, settingsProblems, readSettings } from './feed.js';

const sdk = createSdk({ records, artifacts, log, config });

export function run(ctx) {
  if (ctx.feed !== 'sitemap') {
    return fail(`unknown feed \`${ctx.feed}\``);
  }
  const settings = readSettings(sdk.config);
  const problems = settingsProblems(settings);
  if (problems.length) {
    return fail(problems.join('; '));
  }
  try {
    const result = publish(sdk, settings);
    if (result.urls === 0) {
      return infoOutcome(`nothing to publish: ${result.summary}; the previous sitemap stays`);
    }
    const shape = result.parts === 0 ? 'one file' : `an index of ${result.parts} parts`;
    return ok(`published sitemap.xml: ${result.urls} URLs in ${shape} (${result.summary})`, result.urls);
  } catch (e) {
    return outcomeFor(e);
  }
}

export function check() {
  // `result<_, string>`: returning is ok; throwing a string is err.
  const problems = settingsProblems(readSettings(sdk.config));
  if (problems.length) {
    throw problems.join('; ');
  }
}
