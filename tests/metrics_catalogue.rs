#![allow(clippy::unwrap_used, reason = "test")]
