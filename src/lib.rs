#![forbid(unsafe_code)]
//! core
