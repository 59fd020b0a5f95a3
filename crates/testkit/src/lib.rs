//! Test support shared by every crate's integration tests.
//!
//! Layout: [`net`] finds free ports and polls a condition until a deadline
//! (tests never sleep to wait); [`redis`] starts throwaway `redis-server`
//! processes that can be killed, restarted and frozen; [`redis_cluster`]
//! builds a real Redis Cluster (masters, replicas, optional proxies) that
//! can lose a master, fail over and reshard; [`mysql`] hands out a
//! fresh database on the throwaway MariaDB that `tests/run.sh` starts;
//! [`proxy`] puts a TCP proxy in front of a real server to refuse,
//! black-hole or delay its traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test tooling: a panic fails the test")]

pub mod mysql;
pub mod net;
pub mod proxy;
pub mod redis;
pub mod redis_cluster;
