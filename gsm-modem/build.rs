//! `TEST_SMSPDUDECODER_PYTHON` set (non-empty) at build time becomes
//! `cfg(test_smspdudecoder_python)`; `tests/reference_decoder.rs` is ignored
//! without it, with the reason, so `cargo test` shows the skip instead of
//! passing silently. Cargo runs this again when the variable changes.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TEST_SMSPDUDECODER_PYTHON");
    println!("cargo::rustc-check-cfg=cfg(test_smspdudecoder_python)");
    if std::env::var_os("TEST_SMSPDUDECODER_PYTHON").is_some_and(|value| !value.is_empty()) {
        println!("cargo::rustc-cfg=test_smspdudecoder_python");
    }
}
