//! libFuzzer entry for [`tracr_opt_fuzz::compile`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracr_opt_fuzz::compile(data));
