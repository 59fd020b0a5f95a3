//! The `[source]` section both servers share, and opening it: a configured
//! database, or the embedded SQLite file seeded with the demo catalogue.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::db::{SqlOptions, redact};
use crate::demo::{self, DemoOptions};
use crate::error::SqlError;
use crate::store::SqlStore;

/// Where the source of truth is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSettings {
    /// A database URL (`mysql://…` or `sqlite://…`); absent: the embedded
    /// SQLite file at `embedded_path`, seeded with the demo catalogue when empty.
    pub database_url: Option<String>,
    pub embedded_path: PathBuf,
    /// Goods in the demo catalogue seeded into an empty embedded database.
    pub demo_goods: u64,
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Longest wait for a free connection before the call fails (no pile-up).
    pub acquire_timeout_ms: u64,
    /// Longest time one read may take.
    pub statement_timeout_ms: u64,
}

impl SourceSettings {
    pub fn options(&self) -> SqlOptions {
        SqlOptions {
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            ..SqlOptions::default()
        }
    }
}

impl Default for SourceSettings {
    fn default() -> Self {
        let pool = SqlOptions::default();
        SourceSettings {
            database_url: None,
            embedded_path: PathBuf::from(".pricing-data/pricing.db"),
            demo_goods: 10_000,
            max_connections: pool.max_connections,
            acquire_timeout_ms: pool.acquire_timeout.as_millis() as u64,
            statement_timeout_ms: pool.statement_timeout.as_millis() as u64,
        }
    }
}

/// Opens the configured source (running its migrations).
pub async fn open(settings: &SourceSettings) -> Result<SqlStore, SqlError> {
    match &settings.database_url {
        Some(url) => {
            tracing::info!(url = %redact(url), "opening the source database");
            SqlStore::connect_with(url, settings.options()).await
        }
        None => {
            if let Some(dir) = settings.embedded_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| SqlError::InvalidInput(format!("cannot create {}: {e}", dir.display())))?;
            }
            let store = SqlStore::open_embedded_with(&settings.embedded_path, settings.options()).await?;
            let report =
                demo::seed(&store, DemoOptions { goods: settings.demo_goods, ..DemoOptions::default() }).await?;
            tracing::info!(
                path = %settings.embedded_path.display(),
                seeded = report.seeded,
                goods = report.goods,
                "embedded database open"
            );
            Ok(store)
        }
    }
}
