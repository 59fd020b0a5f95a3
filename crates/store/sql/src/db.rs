//! Opening a pool for either backend, migrating it, and the few helpers every
//! query shares (IN lists, read deadlines).
//!
//! Why one `AnyPool` rather than an enum over `MySqlPool` / `SqlitePool`:
//! every query, conversion and test runs through one code path, so MariaDB
//! and SQLite cannot drift apart in meaning. The price is a schema the Any
//! driver can read (BIGINT / INT / SMALLINT / VARCHAR only, see the
//! migrations) and a few backend lines here (session settings, pragmas).
//! Both backends accept `?` placeholders and the plain SQL used here.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

use crate::error::SqlError;

static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// MariaDB or MySQL: the source of truth in production.
    MySql,
    /// SQLite: the embedded default of a server started with no configuration.
    Sqlite,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, SqlError> {
        let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match scheme.as_str() {
            "mysql" | "mariadb" => Ok(Backend::MySql),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(SqlError::UnsupportedUrl(redact(url))),
        }
    }

    fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Backend::MySql => &MYSQL_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        }
    }
}

/// Pool and deadline settings. The detail path falls back to the SQL store
/// when Redis fails, so a slow or dead database must turn into an error
/// quickly, not into a hang: both waits are bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOptions {
    /// Name in metrics and logs ("sql").
    pub name: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Longest wait for a free (or new) connection.
    pub acquire_timeout: Duration,
    /// Longest time one read (fetch, promotions, feeds) may take, enforced by
    /// the client on every backend, and also by MariaDB (`max_statement_time`)
    /// or MySQL (`max_execution_time`) for every statement of the session.
    pub statement_timeout: Duration,
}

impl Default for SqlOptions {
    fn default() -> SqlOptions {
        SqlOptions {
            name: "sql".into(),
            max_connections: 8,
            acquire_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(1),
        }
    }
}

/// Opens a pool for `url` and applies this crate's migrations for its backend.
pub(crate) async fn open(url: &str, options: &SqlOptions) -> Result<(Backend, AnyPool), SqlError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(url)?;
    let connect: AnyConnectOptions = url.parse()?;
    let connect = connect.disable_statement_logging();
    if backend == Backend::Sqlite {
        // journal_mode is a property of the file and needs an exclusive lock
        // that busy_timeout cannot wait for: set it once, before the pool.
        let mut conn = connect.connect().await?;
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.close().await?;
    }
    let statement_ms = u64::try_from(options.statement_timeout.as_millis()).unwrap_or(u64::MAX).max(1);
    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                match backend {
                    Backend::MySql => session_timeout(conn, statement_ms).await,
                    Backend::Sqlite => {
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                }
                Ok(())
            })
        })
        .connect_with(connect)
        .await?;
    backend.migrator().run(&pool).await?;
    tracing::info!(backend = ?backend, url = %redact(url), "sql store ready");
    Ok((backend, pool))
}

/// Sets the server-side statement limit: MariaDB knows `max_statement_time`
/// (seconds), MySQL `max_execution_time` (milliseconds, SELECT only). A
/// server that knows neither still has the client-side deadline.
async fn session_timeout(conn: &mut sqlx::AnyConnection, statement_ms: u64) {
    let mariadb = format!("SET SESSION max_statement_time = {}.{:03}", statement_ms / 1000, statement_ms % 1000);
    if conn.execute(mariadb.as_str()).await.is_ok() {
        return;
    }
    let mysql = format!("SET SESSION max_execution_time = {statement_ms}");
    if let Err(error) = conn.execute(mysql.as_str()).await {
        tracing::debug!(%error, "no server-side statement timeout; the client-side one still applies");
    }
}

/// The URL of an embedded SQLite file, created if missing.
pub(crate) fn sqlite_url(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            c => escaped.push(c),
        }
    }
    format!("sqlite://{escaped}?mode=rwc")
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Runs a read with the client-side deadline.
pub(crate) async fn deadline<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, SqlError>>,
) -> Result<T, SqlError> {
    tokio::time::timeout(limit, work).await.unwrap_or(Err(SqlError::Timeout(limit)))
}

/// Most values one IN list binds. SQLite allows 32,766 variables and MySQL
/// 65,535 placeholders; larger batches are split into several queries.
pub(crate) const MAX_IN: usize = 1_000;

/// `?, ?, ...` for an IN list of `n` values, where `n` is one of the sizes
/// [`padded_len`] returns, so that the statement cache holds a handful of
/// statements instead of one per batch size.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// The IN-list length used for `n` distinct values: the next power of two
/// (at least 8, at most [`MAX_IN`]; callers split longer lists); the list is
/// padded by repeating a value.
pub(crate) fn padded_len(n: usize) -> usize {
    n.next_power_of_two().clamp(8, MAX_IN)
}

/// `values` padded to [`padded_len`] by repeating the last one (repeats do
/// not change an IN list's meaning).
pub(crate) fn padded(values: &[i64]) -> Vec<i64> {
    let mut out = values.to_vec();
    if let Some(&last) = values.last() {
        out.resize(padded_len(values.len()), last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::from_url("mysql://root@127.0.0.1:3306/x").unwrap(), Backend::MySql);
        assert_eq!(Backend::from_url("mariadb://root@h/x").unwrap(), Backend::MySql);
        assert_eq!(Backend::from_url("sqlite:///tmp/x.db?mode=rwc").unwrap(), Backend::Sqlite);
        assert!(
            matches!(Backend::from_url("postgres://u:secret@h/x"), Err(SqlError::UnsupportedUrl(u)) if !u.contains("secret"))
        );
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("mysql://app:s3cret@db:3306/p"), "mysql://app:***@db:3306/p");
        assert_eq!(redact("mysql://root@db/p"), "mysql://root@db/p");
        assert_eq!(redact("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }

    #[test]
    fn in_lists_come_in_few_sizes() {
        assert_eq!(padded_len(1), 8);
        assert_eq!(padded_len(9), 16);
        assert_eq!(padded_len(1_000), 1_000);
        assert_eq!(padded(&[4, 5, 6]), vec![4, 5, 6, 6, 6, 6, 6, 6]);
        assert!(padded(&[]).is_empty());
        assert_eq!(placeholders(3), "?, ?, ?");
    }

    #[test]
    fn sqlite_paths_are_escaped() {
        assert_eq!(sqlite_url(Path::new("/tmp/a?b#c%d.db")), "sqlite:///tmp/a%3Fb%23c%25d.db?mode=rwc");
    }
}
