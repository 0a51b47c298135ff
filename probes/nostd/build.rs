// The probe provides its own `_start`, so the C runtime's startup files must stay out; libc is
// still linked for the memcpy/memset/memcmp the compiler emits.
fn main() {
    println!("cargo:rustc-link-arg-bins=-nostartfiles");
    println!("cargo:rustc-link-arg-bins=-lc");
}
