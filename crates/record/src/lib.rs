//! The read-side goods record: one versioned, compact record per goods id.
//!
//! Layout: [`model`] holds the types the price engine reads (the goods, its
//! activities, channels) and their validation; [`codec`] turns a record into
//! the bytes stored in Redis and HBase and back, rejecting corrupt bytes with
//! a typed error; [`keys`] names the store keys so that every writer and
//! reader agrees; [`money`] is the one decimal <-> fen conversion and the
//! one rounding rule ([`Fen`]); [`clock`] is the one definition of "now"
//! ([`Clock`], [`ManualClock`] for tests).
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]
#![deny(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]

pub mod clock;
pub mod codec;
pub mod error;
pub mod idmap;
pub mod keys;
pub mod model;
pub mod money;

pub use clock::{Clock, ManualClock};
pub use codec::{decode, decode_for, encode};
pub use error::{DecodeError, InvalidRecord};
pub use model::{
    Activity, ActivityKind, ActivityStatus, Channel, Channels, GoodsId, GoodsRecord, GoodsStatus, MONEY_SCALE,
    UnixMillis, check_money,
};
pub use money::{Fen, MoneyError};
