//! The `[server]` section every server's config file shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// The environment variable a server binary reads its zone from (and the
/// only one it reads): set by the Helm chart from the pod's
/// `topology.kubernetes.io/zone` label.
pub const ZONE_ENV: &str = "PRICING_ZONE";

/// [`ServerSettings::event_interval`] unless the config says otherwise.
pub const DEFAULT_EVENT_INTERVAL: u32 = 61;

/// Where a server listens and how it drains.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// gRPC listen address (the binary binds it; tests bind their own).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` listen address; absent: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// How long health reports NOT_SERVING before the listener closes, so
    /// that load balancers stop routing first. Milliseconds.
    pub drain_grace_ms: u64,
    /// Log filter ("info", "pricing_list=debug,info").
    pub log: String,
    /// Log lines as "text" (coloured only on a terminal) or "json" (one
    /// object per line, for Kubernetes log collectors); the binaries'
    /// `--log-format` flag overrides it.
    pub log_format: LogFormat,
    /// Tokio worker threads; 0 means one per core.
    pub worker_threads: usize,
    /// Task polls a worker makes between two polls of its sockets and
    /// timers (tokio's `event_interval`, whose own default is 61). A
    /// server whose calls each take tens of microseconds of CPU leaves a
    /// ready socket waiting up to that many calls' worth at 61; lower
    /// answers sooner at the price of more polls of the sockets.
    pub event_interval: u32,
    /// The live control file (switches, caller accounts, limits, canary
    /// rules), watched for changes; absent: defaults, and caller accounts
    /// are not enforced (the embedded default).
    pub control_file: Option<PathBuf>,
    /// How often the control file is re-read, in milliseconds.
    pub control_poll_ms: u64,
    /// The zone (machine room) this server runs in: the value of its node's
    /// `topology.kubernetes.io/zone`. A pair whose control section says
    /// `prefer_local` without `local` reads the cluster its `zones` map
    /// gives this zone first. The binaries set it from the environment
    /// variable `PRICING_ZONE` (filled by the Helm chart) when that is set;
    /// absent: unknown, and such a pair reads split.
    pub zone: Option<String>,
}

impl ServerSettings {
    pub fn drain_grace(&self) -> Duration {
        Duration::from_millis(self.drain_grace_ms)
    }

    pub fn control_poll(&self) -> Duration {
        Duration::from_millis(self.control_poll_ms.max(10))
    }

    /// Defaults for a server whose gRPC port is `port` and metrics port `metrics_port`.
    pub fn with_ports(port: u16, metrics_port: u16) -> ServerSettings {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], metrics_port))),
            drain_grace_ms: 0,
            log: "info".into(),
            log_format: LogFormat::Text,
            worker_threads: 0,
            event_interval: DEFAULT_EVENT_INTERVAL,
            control_file: None,
            control_poll_ms: 500,
            zone: None,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings::with_ports(50051, 9464)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; colour only when stdout is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, message, fields).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: expected \"text\" or \"json\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_reads_from_the_flag_and_the_config_file() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("\"text\" or \"json\""));
        #[derive(Deserialize)]
        struct File {
            server: ServerSettings,
        }
        let file: File = toml::from_str("[server]\nlog_format = \"json\"\n").unwrap();
        assert_eq!(file.server.log_format, LogFormat::Json);
        assert_eq!(ServerSettings::default().log_format, LogFormat::Text);
    }

    #[test]
    fn event_interval_reads_from_the_config_file_and_defaults_to_tokios() {
        #[derive(Deserialize)]
        struct File {
            server: ServerSettings,
        }
        let file: File = toml::from_str("[server]\nevent_interval = 4\n").unwrap();
        assert_eq!(file.server.event_interval, 4);
        assert_eq!(ServerSettings::default().event_interval, 61);
    }
}
