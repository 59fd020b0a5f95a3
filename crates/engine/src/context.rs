//! Who is asking: the caller context every activity is filtered by.

use pricing_record::Channel;

/// The caller of a price question, as the services build it from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerContext {
    /// User id; empty for an anonymous visitor. The engine does not read it:
    /// it knows nothing of past orders, so a per-user limit is applied per
    /// call (per order line). A service that tracks purchases passes the
    /// quantity still allowed instead.
    pub pin: String,
    /// The store the user shops in (delivery or pickup). `None` when unknown:
    /// then only activities open to every store apply.
    pub store_id: Option<u64>,
    /// The user's city. `None` when unknown: then only activities open to
    /// every city apply.
    pub city_id: Option<u64>,
    pub channel: Channel,
    pub new_user: bool,
    pub member_level: u32,
}

impl CallerContext {
    /// An anonymous caller in `channel` with no store, city or membership:
    /// sees only activities open to everyone.
    pub fn anonymous(channel: Channel) -> CallerContext {
        CallerContext { pin: String::new(), store_id: None, city_id: None, channel, new_user: false, member_level: 0 }
    }
}
