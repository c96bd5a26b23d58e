//! Backend detection, the `SIMD_ATTENTION_BACKEND` override and the scoped
//! `with_backend` override.

mod common;
use common::backends;
use simd_attention::{Backend, Error, backend, simd::with_backend};

#[test]
fn detection_picks_the_fastest_available_backend() {
    let available = backends();
    assert!(available.contains(&Backend::Portable) && available.contains(&Backend::Scalar));
    assert_eq!(Backend::detect(), available[0]);
    if std::env::var_os("SIMD_ATTENTION_BACKEND").is_none() {
        assert_eq!(backend(), available[0]);
    }
}

#[test]
fn names_round_trip() {
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(&b.to_string()), Some(b));
    }
    assert_eq!(Backend::from_name("sse9"), None);
}

#[test]
fn with_backend_scopes_and_refuses_what_the_cpu_lacks() {
    let before = backend();
    for b in backends() {
        assert_eq!(with_backend(b, backend), Ok(b));
    }
    assert_eq!(backend(), before);
    for b in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
        assert_eq!(with_backend(b, backend), Err(Error::BackendUnavailable { backend: b.name() }));
    }
}

/// Run by `environment_variable_forces_the_backend` in a child process.
#[test]
#[ignore = "helper: run as a child process"]
fn print_backend() {
    println!("backend={}", backend());
}

#[test]
fn environment_variable_forces_the_backend() {
    let exe = std::env::current_exe().unwrap();
    let run = |value: &str| {
        let out = common::command(&exe)
            .args(["--exact", "print_backend", "--ignored", "--nocapture", "--test-threads=1"])
            .env("SIMD_ATTENTION_BACKEND", value)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // The harness prints "test print_backend ... " on the same line.
        text.lines().find_map(|l| l.split("backend=").nth(1)).map(|s| s.trim().to_owned()).unwrap_or_default()
    };
    for b in backends() {
        assert_eq!(run(b.name()), b.name());
    }
    // Unknown or unavailable names fall back to detection, never to illegal instructions.
    assert_eq!(run("sse9"), Backend::detect().name());
    for b in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
        assert_eq!(run(b.name()), Backend::detect().name());
    }
}
