//! A real `redis-server` on a free loopback port, owned by its caller: stopped (by pid)
//! when dropped, and restartable on the same port to simulate an outage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tls::TestCerts;

#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Every write on disk before it is answered, so a killed server restarts whole.
    durable: bool,
    /// A second, TLS port and the certificates it presents (the plain port stays, for
    /// the test's own reads and the readiness check).
    tls: Option<(u16, TestCerts)>,
}

impl RedisServer {
    /// A server that forgets everything when it stops.
    pub fn start() -> RedisServer {
        RedisServer::started(false)
    }

    /// A server with an fsync'd append-only file: what it answered survives a kill.
    pub fn start_durable() -> RedisServer {
        RedisServer::started(true)
    }

    /// A server that also accepts TLS on a second port.
    pub fn start_tls() -> RedisServer {
        RedisServer::started_with(false, Some((crate::free_port(), TestCerts::generate())))
    }

    fn started(durable: bool) -> RedisServer {
        RedisServer::started_with(durable, None)
    }

    fn started_with(durable: bool, tls: Option<(u16, TestCerts)>) -> RedisServer {
        let mut s = RedisServer {
            port: crate::free_port(),
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            durable,
            tls,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TLS port's URL and the CA file that verifies it (`start_tls` servers).
    pub fn tls_url(&self) -> Option<(String, PathBuf)> {
        self.tls
            .as_ref()
            .map(|(port, certs)| (format!("rediss://127.0.0.1:{port}"), certs.ca()))
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        if let Some((port, certs)) = &self.tls {
            cmd.args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(certs.cert())
                .arg("--tls-key-file")
                .arg(certs.key())
                .arg("--tls-ca-cert-file")
                .arg(certs.ca());
        }
        let child = cmd
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                if self.durable { "yes" } else { "no" },
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        self.child = Some(child);
        // Up means answering PING: a durable server accepts connections while it still
        // loads its append-only file, and answers LOADING until it is done.
        for _ in 0..250 {
            if self.answers_ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 16];
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .is_ok()
            && conn.write_all(b"PING\r\n").is_ok()
            && conn
                .read(&mut reply)
                .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
    }

    /// Kills the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
