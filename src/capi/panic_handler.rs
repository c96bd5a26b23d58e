//! The `#[panic_handler]` that a `no_std` static library for a bare-metal
//! target must carry (`cargo rustc --lib --crate-type staticlib
//! --no-default-features --features capi --target thumbv7em-none-eabihf`):
//! C firmware linking the library has no Rust runtime to supply one.
//!
//! It is compiled only with `capi`, without `std`, on `target_os = "none"`,
//! and it is unreachable: the core and the C API check every input and
//! return an error instead of panicking. Should one run anyway it parks
//! the core in a loop, where a debugger or a watchdog finds it.
//!
//! Rust firmware that enables `capi` gets this handler too, and so must not
//! define its own (two would not link); firmware that wants its own
//! handler uses the Rust API, without `capi`.

#[panic_handler]
fn park(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
