"""Staingard warranty: submits the whole order to Staingard once the first
line on it is delivered, and keeps the warranty number Staingard returns as
a note on the order. Python, built with componentize-py.

Staingard publishes no API: the contract here is the one assumed in the API
notes (`../shared/THIRD-PARTY-APIS.md` §8), to be replaced by the private
"Staingard Warranty System API Documentation v1"
(docs/integrations/staingard.md).

Build: scripts/build-plugins.sh. Install:

    airlock install plugins/staingard --tenant acme --mode live \\
        --config endpoint=https://api.staingard.example/v1 \\
        --config retailer_id=R-1234 --config-file staingard.toml

The feed is `warranties.py`, the mapping `mapping.py`.
"""

import airlock_sdk as sdk
import warranties
import wit_world
from componentize_py_types import Err
from warranties import KeyRefused, Staingard


class Settings:
    """The installation's config, checked."""

    def __init__(self):
        self.endpoint = (sdk.config("endpoint") or "").strip()
        self.api_key = sdk.secret("api_key") or ""
        self.retailer_id = (sdk.config("retailer_id") or "").strip()

    def problems(self):
        out = []
        if not self.endpoint.startswith("https://"):
            out.append("`endpoint` must be Staingard's https address")
        if not self.api_key:
            out.append("`api_key` is not set")
        if not self.retailer_id:
            out.append("`retailer_id` is not set")
        return out


def summary(tally):
    parts = [f"{tally.submitted} orders submitted"]
    for n, what in ((tally.reused, "submitted before (the first warranty number kept)"),
                    (tally.before, "submitted earlier (no update is sent)"),
                    (tally.later, "waiting for a delivery"),
                    (tally.never, "without warranty cover or cancelled"),
                    (tally.awaiting, f"{warranties.FLAG} (unchanged since Staingard refused them)"),
                    (tally.flagged, f"newly flagged {warranties.FLAG}")):
        if n:
            parts.append(f"{n} {what}")
    return ", ".join(parts)


def run_feed(ctx, settings):
    live = ctx.mode == wit_world.imports.types.Mode.LIVE
    staingard = Staingard(settings.endpoint, settings.api_key)
    tally = warranties.Tally()
    try:
        warranties.submit_pending(staingard, settings, tally, live)
        warranties.settle(tally)
    except KeyRefused as exc:
        return sdk.fail(f"{exc}: change it with `airlock reauthorise {ctx.tenant}/{ctx.installation} "
                        "--config-file FILE`")
    except Exception as exc:  # every failure becomes an outcome
        failed = sdk.outcome_for(exc)
        failed.message = f"{failed.message}; before it: {summary(tally)}"
        return failed
    if not live:
        shown = ", ".join(tally.would[:5])
        return sdk.info_outcome(f"test mode: nothing sent; would submit {len(tally.would)} orders"
                                f"{': ' + shown if shown else ''} ({summary(tally)})")
    message = f"{summary(tally)} ({staingard.calls} calls)"
    done = tally.submitted + tally.reused
    if tally.failed:
        return sdk.fail(f"{len(tally.failed)} order uploads failed, marked {warranties.FLAG}: "
                        f"{tally.failed[0]}; {message}", done)
    if done:
        return sdk.ok(message, done)
    return sdk.info_outcome(message)


class WitWorld(wit_world.WitWorld):
    def run(self, ctx):
        if ctx.feed != "warranties":
            return sdk.fail(f"unknown feed `{ctx.feed}` (feeds: warranties)")
        settings = Settings()
        problems = settings.problems()
        if problems:
            return sdk.fail("; ".join(problems))
        return run_feed(ctx, settings)

    def check(self):
        """Test connection: reads an order reference that does not exist;
        Staingard answers 404 to a good key, 401/403 to a bad one."""
        settings = Settings()
        problems = settings.problems()
        if problems:
            raise Err("; ".join(problems))
        try:
            Staingard(settings.endpoint, settings.api_key).probe()
        except KeyRefused as exc:
            raise Err(str(exc)) from None
        except (sdk.RetryLater, sdk.HttpFailure) as exc:
            raise Err(f"Staingard could not be reached: {exc}") from None
