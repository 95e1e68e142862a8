//! End-to-end tests: real components compiled from `plugins/` by
//! `scripts/build-plugins.sh`, run by a real host on a real SQLite file,
//! against fake third-party servers on loopback.

mod admin_api;
mod artifacts;
mod caps;
mod cli;
mod coverage;
mod custom_store;
mod ebay;
mod egress;
mod egress_guests;
mod feeds;
mod google_store_reviews;
mod instagram;
mod layering;
mod multinode;
mod oauth;
mod observability;
mod operations;
mod records;
mod records_cli;
mod runtime;
mod salesmanago;
mod sandbox;
mod serve_cli;
mod serve_faults;
mod staingard;
mod state;
mod storefeeder;
mod support;
mod traces;
mod trust;
mod webhooks;
mod xcart;
mod xero;
