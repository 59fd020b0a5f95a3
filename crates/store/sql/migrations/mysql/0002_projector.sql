-- What the projector keeps in the source database, MariaDB / MySQL flavour.
-- migrations/sqlite/0002_projector.sql has the same tables and meaning.
-- Kept next to the catalogue on purpose: a cursor or a queued retry is
-- durable exactly as long as the data it refers to.

-- Where a projector run stands, one row per cursor: a full sync's last
-- goods id written ("full", "full:redis-b"), the incremental feed's
-- watermark ("incremental": updated_at of the last goods projected + id).
CREATE TABLE projector_cursor (
    name        VARCHAR(64) NOT NULL PRIMARY KEY,
    position_ms BIGINT      NOT NULL,
    after_id    BIGINT      NOT NULL,
    updated_at  BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Writes that still failed after the in-process retries (seed 001: retry,
-- then alert). One row per (cluster, goods); the drain re-reads the CURRENT
-- record from the catalogue, so `version` is only the highest version that
-- failed (for the log and the alert), not what will be written.
CREATE TABLE projector_retry (
    -- the cluster store name: 'redis-a', 'hbase-b', ...
    target          VARCHAR(64)   NOT NULL,
    goods_id        BIGINT        NOT NULL,
    version         BIGINT        NOT NULL,
    attempts        INT           NOT NULL,
    last_error      VARCHAR(1000) NOT NULL,
    -- unix ms: the drain skips the row until then (backoff)
    next_attempt_at BIGINT        NOT NULL,
    created_at      BIGINT        NOT NULL,
    updated_at      BIGINT        NOT NULL,
    PRIMARY KEY (target, goods_id),
    KEY projector_retry_due (next_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The purge looks for rows soft-deleted before a cutoff.
ALTER TABLE goods ADD KEY goods_deleted (deleted_at);
ALTER TABLE activity ADD KEY activity_deleted (deleted_at);
ALTER TABLE promotion ADD KEY promotion_deleted (deleted_at);
