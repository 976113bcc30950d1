//! Exit codes of `faena`: 0 success, 1 a check failed or a thing was not found, 2 bad input or settings.

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
