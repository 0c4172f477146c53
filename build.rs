//! Marks the tests that need an outside service. Each `TEST_*` variable
//! below that is set (non-empty) when the crate is built becomes a `cfg` of
//! the same name in lowercase (`TEST_DATABASE_URL` → `cfg(test_database_url)`);
//! a test needing one that is unset carries
//! `#[cfg_attr(not(test_database_url), ignore = "needs TEST_DATABASE_URL …")]`,
//! so plain `cargo test` reports it as ignored, with the reason, instead of
//! passing it silently. Cargo runs this again when any of them changes.

/// The variables `.ci/run` sets (README, "Tests").
const SERVICES: &[&str] = &[
    "TEST_DATABASE_URL",
    "TEST_NATS_URL",
    "TEST_REDIS_URL",
    "TEST_KANNEL_BEARERBOX",
    "TEST_NODE_SMPP_DIR",
    "TEST_SMPPLIB_PYTHON",
    "TEST_CHROMIUM",
    "TEST_SCHEMATHESIS",
    "TEST_SMSPDUDECODER_PYTHON",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for var in SERVICES {
        let cfg = var.to_ascii_lowercase();
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(var).is_some_and(|value| !value.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
