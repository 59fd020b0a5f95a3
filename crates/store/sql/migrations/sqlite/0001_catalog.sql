-- The catalogue, SQLite flavour (the embedded default).
-- migrations/mysql/0001_catalog.sql has the same tables, columns and
-- meaning; change both together.
--
-- Every integer is INTEGER (SQLite stores up to 8 bytes; sqlx's Any driver
-- reads it as i64) and every string TEXT. BOOLEAN is avoided on purpose: the
-- Any driver cannot read a column declared BOOLEAN. Money is integer fen,
-- percents are hundredths of a percent, times are unix milliseconds (UTC).
-- Soft delete: deleted_at is set instead of deleting the row (seed 001),
-- and the row's version moves forward so that the deletion is projected.

-- One row: the global version counter and the last updated_at stamped.
-- Every catalogue write takes its version here, in the same transaction,
-- so versions (and updated_at) follow commit order.
CREATE TABLE catalog_clock (
    id               INTEGER NOT NULL PRIMARY KEY,
    version          INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

INSERT INTO catalog_clock (id, version, updated_at) VALUES (1, 0, 0);

CREATE TABLE goods (
    id               INTEGER NOT NULL PRIMARY KEY,
    store_id         INTEGER NOT NULL,
    base_price_fen   INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    -- 'on_sale' | 'delisted' (deletion is deleted_at, not a status)
    status           TEXT NOT NULL,
    -- the record version: bumped by every change to the goods or any of its activities
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted_at       INTEGER NULL
);

CREATE TABLE activity (
    id               INTEGER NOT NULL PRIMARY KEY,
    goods_id         INTEGER NOT NULL,
    -- 'flash_sale' | 'discount' | 'amount_off' | 'subsidy'
    kind             TEXT NOT NULL,
    -- value x 100: fen for flash_sale, subsidy and amount_off; hundredths of a
    -- percent of the original price for discount (8500 = 85% = "8.5 折")
    value_x100       INTEGER NOT NULL,
    start_ms         INTEGER NOT NULL,
    end_ms           INTEGER NOT NULL,
    -- bitset: 1 app, 2 mini program, 4 h5, 8 pc
    channels         INTEGER NOT NULL,
    -- comma-separated ids; empty = every city / every store
    city_ids         TEXT NOT NULL DEFAULT '',
    store_ids        TEXT NOT NULL DEFAULT '',
    -- 0 | 1
    new_user_only    INTEGER NOT NULL DEFAULT 0,
    min_member_level INTEGER NOT NULL DEFAULT 0,
    -- NULL = unlimited stock
    stock_left       INTEGER NULL,
    per_user_limit   INTEGER NOT NULL DEFAULT 0,
    priority         INTEGER NOT NULL DEFAULT 0,
    -- 'draft' | 'online' | 'offline'
    status           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted_at       INTEGER NULL
);

-- Cart promotions and coupons.
CREATE TABLE promotion (
    id               INTEGER NOT NULL PRIMARY KEY,
    -- 'threshold_amount_off' | 'threshold_percent_off' | 'coupon'
    kind             TEXT NOT NULL,
    -- 'store' | 'platform'
    scope            TEXT NOT NULL,
    -- the store of a store-scoped promotion; 0 for platform-wide
    store_id         INTEGER NOT NULL DEFAULT 0,
    name             TEXT NOT NULL DEFAULT '',
    start_ms         INTEGER NOT NULL,
    end_ms           INTEGER NOT NULL,
    -- 'draft' | 'online' | 'offline'
    status           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted_at       INTEGER NULL
);

-- Tiers of a promotion: spend threshold_fen, get value_x100 (fen off for
-- threshold_amount_off and coupon; hundredths of a percent payable for
-- threshold_percent_off: 9000 = pay 90%).
CREATE TABLE promotion_tier (
    promotion_id     INTEGER NOT NULL,
    threshold_fen    INTEGER NOT NULL,
    value_x100       INTEGER NOT NULL,
    PRIMARY KEY (promotion_id, threshold_fen)
);

-- Goods a promotion is limited to; none = every goods in its scope.
CREATE TABLE promotion_goods (
    promotion_id     INTEGER NOT NULL,
    goods_id         INTEGER NOT NULL,
    PRIMARY KEY (promotion_id, goods_id)
);

CREATE INDEX goods_updated ON goods (updated_at, id);
CREATE INDEX goods_store ON goods (store_id);
CREATE INDEX activity_goods ON activity (goods_id);
CREATE INDEX activity_updated ON activity (updated_at, id);
CREATE INDEX promotion_updated ON promotion (updated_at, id);
CREATE INDEX promotion_store ON promotion (store_id);
