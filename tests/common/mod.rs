//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value as Json;
use tracr_opt::library;
use tracr_opt::rasp::json::value_from_json;
use tracr_opt::rasp::Program;
use tracr_opt::value::Value;

/// Tracr's reference measurements, extracted by src/library/extract_reference.py.
pub fn reference() -> Json {
    let text = include_str!("../../src/library/tracr_reference.json");
    serde_json::from_str(text).expect("reference fixture parses")
}

pub fn values(j: &Json) -> Vec<Value> {
    j.as_array().expect("array").iter().map(|v| value_from_json(v).expect("value")).collect()
}

/// A bundled program, through the public API.
pub fn bundled(name: &str) -> Program {
    assert!(library::find(name).is_some(), "no bundled program {name}");
    Program::load(name).unwrap_or_else(|e| panic!("{name} fails to load:\n{e}"))
}

/// The bundled program that reimplements a reference entry.
pub fn bundled_for_tracr(tracr_name: &str) -> &'static library::Bundled {
    library::PROGRAMS
        .iter()
        .find(|b| b.tracr_name == tracr_name)
        .unwrap_or_else(|| panic!("no bundled program reimplements {tracr_name}"))
}
