// Google Store Reviews (JavaScript, componentize-js): Google Customer
// Reviews' opt-in values for each successful order, published as
// gcr-opt-ins.json for the storefront to render GCR's snippet on the order
// confirmation page. GCR has no server API for opt-ins: the snippet runs in
// the customer's browser (README.md says what the storefront does).
//
//   airlock run plugins/google-store-reviews --feed opt-ins --tenant acme \
//       --config merchant_id=123456 --grant-data
//
// A run whose file would be byte for byte the published one publishes
// nothing (info): its fingerprint is kept in storage.

import * as records from 'airlock:connector/records@0.1.0';
import * as artifacts from 'airlock:connector/artifacts@0.1.0';
import * as log from 'airlock:connector/log@0.1.0';
import * as config from 'airlock:connector/config@0.1.0';
import * as storage from 'airlock:connector/storage@0.1.0';

import { createSdk, fail, infoOutcome, ok, outcomeFor } from '../../sdk-js/airlock-sdk.js';
import { ARTIFACT, CONTENT_TYPE, build, describe, fingerprint, readSettings, settingsProblems } from './gcr.js';

const sdk = createSdk({ records, artifacts, log, config });
const FINGERPRINT = 'fingerprint';

export function run(ctx) {
  if (ctx.feed !== 'opt-ins') {
    return fail(`unknown feed \`${ctx.feed}\``);
  }
  const settings = readSettings(sdk.config);
  const problems = settingsProblems(settings);
  if (problems.length) {
    return fail(problems.join('; '));
  }
  try {
    const result = build(sdk, settings, Number(ctx.scheduledAt));
    const summary = `${result.orders} order(s) (${describe(result.skipped)})`;
    const print = fingerprint(result.text);
    const previous = storage.get(FINGERPRINT);
    if (previous && new TextDecoder().decode(previous) === print) {
      return infoOutcome(`no change: ${summary}; ${ARTIFACT} stays as published`, result.orders);
    }
    const writer = new sdk.ArtifactWriter(ARTIFACT, CONTENT_TYPE).begin();
    writer.write(result.text);
    writer.close();
    storage.set(FINGERPRINT, new TextEncoder().encode(print));
    return ok(`published ${ARTIFACT}: ${summary}`, result.orders);
  } catch (e) {
    return outcomeFor(e);
  }
}

export function check() {
  const problems = settingsProblems(readSettings(sdk.config));
  if (problems.length) {
    throw problems.join('; ');
  }
}
