-- What the projector keeps in the source database, SQLite flavour.
-- migrations/mysql/0002_projector.sql has the same tables and meaning
-- (comments on the columns are there).

CREATE TABLE projector_cursor (
    name             TEXT NOT NULL PRIMARY KEY,
    position_ms      INTEGER NOT NULL,
    after_id         INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE projector_retry (
    target           TEXT NOT NULL,
    goods_id         INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    last_error       TEXT NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (target, goods_id)
);

CREATE INDEX projector_retry_due ON projector_retry (next_attempt_at);
CREATE INDEX goods_deleted ON goods (deleted_at);
CREATE INDEX activity_deleted ON activity (deleted_at);
CREATE INDEX promotion_deleted ON promotion (deleted_at);
