//! libFuzzer entry for [`tracr_opt_fuzz::model_dir`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracr_opt_fuzz::model_dir(data));
