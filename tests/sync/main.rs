//! Integration tests, one binary: Following the core: the feed against a synthetic core, JetStream fan-out, the PostgreSQL relay,
//! the store conformance suite, records with bad fields, the synthetic core's feed itself.
//! Shared helpers come from `tests/support` (the `support` crate).

mod bad_fields;
mod feed_synthetic;
mod relay_postgres;
mod store_conformance;
mod sync_feed;
mod sync_jetstream;
