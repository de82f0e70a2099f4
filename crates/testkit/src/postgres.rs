//! A throw-away PostgreSQL cluster per process: `initdb` into a temp folder, started
//! with `pg_ctl` on a free loopback port, one fresh database per caller, stopped by pid
//! when the process exits (a watchdog process waits for it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::tls::TestCerts;

struct Cluster {
    port: u16,
    /// The cluster's folder (its data and its log); removed by the watchdog.
    dir: PathBuf,
}

/// The directory holding `initdb` and `pg_ctl`: Debian's versioned folder, else PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn tool(name: &str) -> PathBuf {
    bin_dir().map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// PostgreSQL refuses to run as root: as root, its tools run as the `postgres` user.
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a cluster; with `tls`, it also accepts TLS connections presenting that
/// certificate.
fn start(tls: Option<&TestCerts>) -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("crm-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let mut ssl = String::new();
    if let Some(certs) = tls {
        // Copied in before the folder is handed to the server's user, who must own its key.
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::copy(certs.cert(), &cert).expect("copy certificate");
        let key_text = std::fs::read_to_string(certs.key()).expect("read key");
        crate::tls::write_private(&key, &key_text);
        ssl = format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
    }
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(&dir);
                c
            },
            "chown",
        );
    }
    let data = dir.join("data");
    let mut init = pg_command(&tool("initdb"));
    init.arg("-D")
        .arg(&data)
        .args(["-U", "crm", "--auth=trust", "-E", "UTF8", "--locale=C"]);
    run(init, "initdb");
    let port = crate::free_port();
    let mut ctl = pg_command(&tool("pg_ctl"));
    ctl.arg("-D")
        .arg(&data)
        .arg("-o")
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200{ssl}",
            dir.display()
        ))
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "start"]);
    run(ctl, "pg_ctl start");
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .expect("postmaster.pid");
    // Stops the cluster (by pid) and removes its folder once this test process exits.
    let watchdog = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -INT {pid}; \
         while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; rm -rf '{dir}'",
        me = std::process::id(),
        dir = dir.display()
    );
    // Detached (the shell that starts it exits at once), so nothing is left to reap.
    let started = Command::new("sh")
        .args(["-c", &format!("( {watchdog} ) >/dev/null 2>&1 &")])
        .status()
        .expect("watchdog starts");
    assert!(started.success(), "watchdog starts");
    Cluster { port, dir }
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| start(None))
}

/// The cluster that also speaks TLS, and the certificates it presents.
fn tls_cluster() -> &'static (Cluster, TestCerts) {
    static CLUSTER: OnceLock<(Cluster, TestCerts)> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let certs = TestCerts::generate();
        (start(Some(&certs)), certs)
    })
}

/// A fresh, empty database on the shared cluster; its URL.
pub fn database() -> String {
    create_database(cluster())
}

/// A fresh database on a cluster that accepts TLS; its plain URL (no TLS parameters)
/// and the CA file that verifies the server's certificate.
pub fn tls_database() -> (String, PathBuf) {
    let (cluster, certs) = tls_cluster();
    (create_database(cluster), certs.ca())
}

/// A fresh database whose every statement the server logs (`log_statement = all`, set
/// on this database only), and the cluster's log file they are written to, as
/// `LOG:  statement: …` or `LOG:  execute <name>: …` entries.
pub fn logged_database() -> (String, PathBuf) {
    let c = cluster();
    let url = create_database(c);
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let admin = format!("postgresql://crm@127.0.0.1:{}/postgres", c.port);
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .expect("connect to the test cluster");
        client
            .batch_execute(&format!("ALTER DATABASE {name} SET log_statement = 'all'"))
            .expect("statements logged");
    })
    .join()
    .expect("logging set");
    (url, c.dir.join("log"))
}

/// Runs on a plain thread: the blocking client must stay off async runtime threads.
fn create_database(c: &'static Cluster) -> String {
    std::thread::spawn(move || {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = format!("postgresql://crm@127.0.0.1:{}/postgres", c.port);
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .expect("connect to the test cluster");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        format!("postgresql://crm@127.0.0.1:{}/{name}", c.port)
    })
    .join()
    .expect("database created")
}
