//! Throwaway `redis-server` processes for tests.
//!
//! Each [`RedisServer`] runs on its own free port with its own directory and
//! no persistence; it is killed when dropped. Tests use [`RedisServer::kill`],
//! [`RedisServer::restart`] and [`RedisServer::freeze`] to stage faults.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::net::{eventually_blocking, free_port};

pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub(crate) fn binary() -> String {
    std::env::var("PRICING_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer { port: free_port(), dir, child: None };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", self.dir.path().to_str().expect("utf-8 temp path")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}); run the tests through tests/run.sh", binary()));
        self.child = Some(child);
        let port = self.port;
        eventually_blocking("redis-server to answer PING", Duration::from_secs(10), || ping(port).then_some(()));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL): connections drop, the port refuses.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: it keeps nothing).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the process holds its connections but answers nothing (a hang, not a refusal).
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`RedisServer::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("server is running");
        let ok = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill -{sig} {pid} failed");
    }

    /// Runs one command through a raw connection and returns the reply text
    /// (for assertions such as INFO commandstats).
    pub fn command(&self, args: &[&str]) -> String {
        raw_command(self.port, args).unwrap_or_else(|e| panic!("redis command {args:?}: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen process must be thawed before it can die cleanly.
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.kill();
    }
}

fn ping(port: u16) -> bool {
    matches!(raw_command(port, &["PING"]), Ok(reply) if reply.contains("PONG"))
}

pub(crate) fn raw_command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
    }
    stream.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        out.extend_from_slice(&buf[..n]);
        if n == 0 || reply_complete(&out) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `calls=` of `cmdstat_<command>` in an `INFO commandstats` reply; 0 when
/// the command never ran (Redis lists only commands that did).
pub fn command_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:");
    info.lines()
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whether a RESP reply (simple string, error, integer or one bulk string) is complete.
fn reply_complete(buf: &[u8]) -> bool {
    let Some(first_end) = buf.windows(2).position(|w| w == b"\r\n") else { return false };
    match buf[0] {
        b'$' => {
            let len: i64 = std::str::from_utf8(&buf[1..first_end]).ok().and_then(|s| s.parse().ok()).unwrap_or(-1);
            len < 0 || buf.len() >= first_end + 2 + len as usize + 2
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_command_calls_from_commandstats() {
        let info = "$120\r\n# Commandstats\r\ncmdstat_mget:calls=12,usec=40,usec_per_call=3.33\r\n\
                    cmdstat_evalsha:calls=3,usec=9\r\n";
        assert_eq!(command_calls(info, "mget"), 12);
        assert_eq!(command_calls(info, "evalsha"), 3);
        assert_eq!(command_calls(info, "get"), 0);
    }
}
