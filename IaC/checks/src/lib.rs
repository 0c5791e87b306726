//! Offline checks of `IaC/` (see README.md): the provider-schema check lives
//! in [`schema`]; the tests in tests/ run the checks.

pub mod schema;
