//! Fresh databases on the throwaway MariaDB started by `tests/run.sh`.

/// The server URL exported by `tests/run.sh` (`mysql://root@127.0.0.1:PORT`).
pub fn server_url() -> String {
    std::env::var("PRICING_TEST_MYSQL_URL")
        .expect("PRICING_TEST_MYSQL_URL is not set: run the tests through `bash tests/run.sh`")
}

/// Creates a new, empty database with a unique name and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    use sqlx::Connection;
    let server = server_url();
    let name = format!("{prefix}_{}_{:08x}", std::process::id(), rand::random::<u32>());
    let mut conn = sqlx::MySqlConnection::connect(&server).await.expect("connect to the test MariaDB");
    sqlx::query(&format!("CREATE DATABASE `{name}`")).execute(&mut conn).await.expect("create database");
    format!("{server}/{name}")
}
