// The probe provides its own `_start`, so the C runtime's startup files must stay out; libc is
// still linked for the memcpy/memset/memcmp the compiler emits. Only on the host: an embedded
// target links with rust-lld, and its compiler-builtins provide those functions.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("TARGET").ok() == std::env::var("HOST").ok() {
        println!("cargo:rustc-link-arg-bins=-nostartfiles");
        println!("cargo:rustc-link-arg-bins=-lc");
    }
}
