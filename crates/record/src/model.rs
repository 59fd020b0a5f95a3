//! The domain types of one goods record, as the price engine reads them.

use rust_decimal::Decimal;

use crate::error::InvalidRecord;
use crate::money::Fen;

/// A goods id. Ids are positive; 0 is never a valid goods.
pub type GoodsId = u64;

/// Milliseconds since the Unix epoch, UTC. Activity windows and `now` use it.
pub type UnixMillis = i64;

/// The largest number of decimal places any amount in source data may have
/// (CNY: yuan with fen).
pub const MONEY_SCALE: u32 = 2;

/// The denormalised read-side record of one goods id: its base price and all
/// its activities, including future and ended windows, so that the price can
/// switch at a window boundary without re-projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodsRecord {
    pub goods_id: GoodsId,
    /// Increases with every change to the goods or any of its activities;
    /// stores never replace a newer version with an older one.
    pub version: u64,
    /// The store (shop) that sells the goods; store-scoped promotions match it.
    pub store_id: u64,
    /// Original price per unit, in `currency`, at most 2 decimal places.
    pub base_price: Decimal,
    /// ISO 4217 code; the service prices in CNY.
    pub currency: String,
    pub status: GoodsStatus,
    pub activities: Vec<Activity>,
}

/// Whether the goods can be sold. A deleted goods is projected as a tombstone
/// (`Deleted`) so that a stale copy with an older version cannot come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoodsStatus {
    OnSale,
    /// Temporarily off the shelf: priced, but flagged.
    Delisted,
    /// Tombstone: the read path answers "not found".
    Deleted,
}

/// One single-item activity (flash sale, discount, amount off, subsidy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub id: u64,
    pub goods_id: GoodsId,
    pub kind: ActivityKind,
    /// Meaning depends on `kind`: the fixed price for FlashSale and Subsidy,
    /// the percent of the original for Discount (85 = 85% = "8.5 折"),
    /// the amount taken off per unit for AmountOff. At most 2 decimal places.
    pub value: Decimal,
    /// Window start, inclusive.
    pub start_ms: UnixMillis,
    /// Window end, exclusive.
    pub end_ms: UnixMillis,
    pub channels: Channels,
    /// Cities where it applies; empty means every city.
    pub city_ids: Vec<u64>,
    /// Stores (pickup/delivery store of the caller) where it applies; empty means every store.
    pub store_ids: Vec<u64>,
    pub new_user_only: bool,
    /// 0 means any member level.
    pub min_member_level: u32,
    /// Units of activity stock left; `None` means unlimited.
    pub stock_left: Option<u64>,
    /// Units one user may buy at this price; 0 means no limit.
    pub per_user_limit: u32,
    /// Higher wins a tie on price.
    pub priority: i32,
    pub status: ActivityStatus,
    /// Soft-deleted in the source of truth; kept until purge so the version moves forward.
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivityKind {
    /// Fixed price for the window.
    FlashSale,
    /// Percent of the original price.
    Discount,
    /// Fixed amount off the original price.
    AmountOff,
    /// Fixed price funded by the platform.
    Subsidy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityStatus {
    Draft,
    Online,
    Offline,
}

/// Sales channels a caller can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    App,
    MiniProgram,
    H5,
    Pc,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::App, Channel::MiniProgram, Channel::H5, Channel::Pc];

    const fn bit(self) -> u8 {
        match self {
            Channel::App => 1,
            Channel::MiniProgram => 2,
            Channel::H5 => 4,
            Channel::Pc => 8,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::MiniProgram => "mini_program",
            Channel::H5 => "h5",
            Channel::Pc => "pc",
        }
    }
}

/// A set of channels, one bit each: compact in the record and cheap to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Channels(u8);

impl Channels {
    pub const NONE: Channels = Channels(0);
    pub const ALL: Channels = Channels(0b1111);

    pub fn from_bits(bits: u8) -> Result<Channels, InvalidRecord> {
        if bits & !Self::ALL.0 != 0 {
            return Err(InvalidRecord::UnknownChannelBits(bits));
        }
        Ok(Channels(bits))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, channel: Channel) -> bool {
        self.0 & channel.bit() != 0
    }

    pub fn with(self, channel: Channel) -> Channels {
        Channels(self.0 | channel.bit())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Channel> for Channels {
    fn from_iter<T: IntoIterator<Item = Channel>>(iter: T) -> Self {
        iter.into_iter().fold(Channels::NONE, Channels::with)
    }
}

impl GoodsRecord {
    /// A tombstone for a deleted goods: carries the version so that an older
    /// live copy cannot overwrite it.
    pub fn tombstone(goods_id: GoodsId, version: u64) -> GoodsRecord {
        GoodsRecord {
            goods_id,
            version,
            store_id: 0,
            base_price: Decimal::ZERO,
            currency: String::new(),
            status: GoodsStatus::Deleted,
            activities: Vec::new(),
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.status == GoodsStatus::Deleted
    }

    /// Checks the record as a whole: a tombstone only needs an id and a
    /// version; a live record needs a positive base price with at most 2
    /// decimal places and a currency. Activities are checked one by one by
    /// [`Activity::validate`]; a bad activity does not make the goods
    /// unsellable, the engine drops it with a trace reason.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        if self.goods_id == 0 {
            return Err(InvalidRecord::ZeroGoodsId);
        }
        if self.version == 0 {
            return Err(InvalidRecord::ZeroVersion);
        }
        if self.is_tombstone() {
            return Ok(());
        }
        check_money("base_price", self.base_price)?;
        if self.base_price <= Decimal::ZERO {
            return Err(InvalidRecord::NonPositive { field: "base_price", value: self.base_price });
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(InvalidRecord::Currency(self.currency.clone()));
        }
        Ok(())
    }
}

impl Activity {
    /// An online activity of `kind` at `value` for `goods_id` in the window
    /// [`start_ms`, `end_ms`), open to everyone: every channel, city and
    /// store, no membership or new-user condition, unlimited stock, no
    /// per-user limit, priority 0. Set the other fields on the result.
    pub fn open(
        id: u64,
        goods_id: GoodsId,
        kind: ActivityKind,
        value: Decimal,
        start_ms: UnixMillis,
        end_ms: UnixMillis,
    ) -> Activity {
        Activity {
            id,
            goods_id,
            kind,
            value,
            start_ms,
            end_ms,
            channels: Channels::ALL,
            city_ids: Vec::new(),
            store_ids: Vec::new(),
            new_user_only: false,
            min_member_level: 0,
            stock_left: None,
            per_user_limit: 0,
            priority: 0,
            status: ActivityStatus::Online,
            deleted: false,
        }
    }

    /// Checks one activity on its own terms: window not empty, value in
    /// range for its kind with at most 2 decimal places, channels not empty,
    /// goods id matching its record.
    pub fn validate(&self, goods_id: GoodsId) -> Result<(), InvalidRecord> {
        if self.goods_id != goods_id {
            return Err(InvalidRecord::ForeignActivity { activity_id: self.id, goods_id: self.goods_id });
        }
        if self.end_ms <= self.start_ms {
            return Err(InvalidRecord::EmptyWindow { activity_id: self.id });
        }
        if self.channels.is_empty() {
            return Err(InvalidRecord::NoChannel { activity_id: self.id });
        }
        check_money("activity.value", self.value)?;
        let positive = self.value > Decimal::ZERO;
        let in_range = match self.kind {
            ActivityKind::FlashSale | ActivityKind::Subsidy | ActivityKind::AmountOff => positive,
            ActivityKind::Discount => positive && self.value < Decimal::ONE_HUNDRED,
        };
        if !in_range {
            return Err(InvalidRecord::ActivityValue { activity_id: self.id, kind: self.kind, value: self.value });
        }
        Ok(())
    }
}

/// Amounts in source data carry at most [`MONEY_SCALE`] decimal places and
/// are not negative.
/// (The rule of [`Fen::from_amount`], with the field named.)
pub fn check_money(field: &'static str, value: Decimal) -> Result<(), InvalidRecord> {
    Fen::from_amount(value).map(drop).map_err(|error| InvalidRecord::money(field, error))
}
