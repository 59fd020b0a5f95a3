-- The catalogue, MariaDB / MySQL flavour. migrations/sqlite/0001_catalog.sql
-- has the same tables, columns and meaning; change both together.
--
-- Column types are chosen so that sqlx's Any driver reads them exactly on
-- both backends: integers are SMALLINT / INT / BIGINT (Any cannot read
-- TINYINT or DECIMAL), text is VARCHAR (MySQL reports TEXT as a blob).
-- Money is integer fen (BIGINT), percents are hundredths of a percent,
-- times are unix milliseconds (BIGINT, UTC; no time zone anywhere).
-- Soft delete: deleted_at is set instead of deleting the row (seed 001),
-- and the row's version moves forward so that the deletion is projected.

-- One row: the global version counter and the last updated_at stamped.
-- Every catalogue write takes its version here, in the same transaction,
-- so versions (and updated_at) follow commit order.
CREATE TABLE catalog_clock (
    id         SMALLINT NOT NULL PRIMARY KEY,
    version    BIGINT   NOT NULL,
    updated_at BIGINT   NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

INSERT INTO catalog_clock (id, version, updated_at) VALUES (1, 0, 0);

CREATE TABLE goods (
    id             BIGINT      NOT NULL PRIMARY KEY,
    store_id       BIGINT      NOT NULL,
    base_price_fen BIGINT      NOT NULL,
    currency       VARCHAR(3)  NOT NULL,
    -- 'on_sale' | 'delisted' (deletion is deleted_at, not a status)
    status         VARCHAR(16) NOT NULL,
    -- the record version: bumped by every change to the goods or any of its activities
    version        BIGINT      NOT NULL,
    created_at     BIGINT      NOT NULL,
    updated_at     BIGINT      NOT NULL,
    deleted_at     BIGINT      NULL,
    KEY goods_updated (updated_at, id),
    KEY goods_store (store_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE activity (
    id               BIGINT        NOT NULL PRIMARY KEY,
    goods_id         BIGINT        NOT NULL,
    -- 'flash_sale' | 'discount' | 'amount_off' | 'subsidy'
    kind             VARCHAR(16)   NOT NULL,
    -- value x 100: fen for flash_sale, subsidy and amount_off; hundredths of a
    -- percent of the original price for discount (8500 = 85% = "8.5 折")
    value_x100       BIGINT        NOT NULL,
    start_ms         BIGINT        NOT NULL,
    end_ms           BIGINT        NOT NULL,
    -- bitset: 1 app, 2 mini program, 4 h5, 8 pc
    channels         INT           NOT NULL,
    -- comma-separated ids; empty = every city / every store
    city_ids         VARCHAR(2000) NOT NULL DEFAULT '',
    store_ids        VARCHAR(2000) NOT NULL DEFAULT '',
    -- 0 | 1
    new_user_only    SMALLINT      NOT NULL DEFAULT 0,
    min_member_level INT           NOT NULL DEFAULT 0,
    -- NULL = unlimited stock
    stock_left       BIGINT        NULL,
    per_user_limit   INT           NOT NULL DEFAULT 0,
    priority         INT           NOT NULL DEFAULT 0,
    -- 'draft' | 'online' | 'offline'
    status           VARCHAR(16)   NOT NULL,
    version          BIGINT        NOT NULL,
    created_at       BIGINT        NOT NULL,
    updated_at       BIGINT        NOT NULL,
    deleted_at       BIGINT        NULL,
    KEY activity_goods (goods_id),
    KEY activity_updated (updated_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Cart promotions and coupons.
CREATE TABLE promotion (
    id         BIGINT       NOT NULL PRIMARY KEY,
    -- 'threshold_amount_off' | 'threshold_percent_off' | 'coupon'
    kind       VARCHAR(32)  NOT NULL,
    -- 'store' | 'platform'
    scope      VARCHAR(16)  NOT NULL,
    -- the store of a store-scoped promotion; 0 for platform-wide
    store_id   BIGINT       NOT NULL DEFAULT 0,
    name       VARCHAR(200) NOT NULL DEFAULT '',
    start_ms   BIGINT       NOT NULL,
    end_ms     BIGINT       NOT NULL,
    -- 'draft' | 'online' | 'offline'
    status     VARCHAR(16)  NOT NULL,
    version    BIGINT       NOT NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    deleted_at BIGINT       NULL,
    KEY promotion_updated (updated_at, id),
    KEY promotion_store (store_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Tiers of a promotion: spend threshold_fen, get value_x100 (fen off for
-- threshold_amount_off and coupon; hundredths of a percent payable for
-- threshold_percent_off: 9000 = pay 90%).
CREATE TABLE promotion_tier (
    promotion_id  BIGINT NOT NULL,
    threshold_fen BIGINT NOT NULL,
    value_x100    BIGINT NOT NULL,
    PRIMARY KEY (promotion_id, threshold_fen)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Goods a promotion is limited to; none = every goods in its scope.
CREATE TABLE promotion_goods (
    promotion_id BIGINT NOT NULL,
    goods_id     BIGINT NOT NULL,
    PRIMARY KEY (promotion_id, goods_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
