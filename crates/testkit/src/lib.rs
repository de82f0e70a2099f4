//! `crm-testkit`: the real services the test suites and `cargo xtask bench` run against,
//! started on free loopback ports in temporary folders and stopped by pid — a
//! PostgreSQL cluster (`initdb` + `pg_ctl`, Debian's packages) and `redis-server`.
//! Nothing here is used by the product.

pub mod postgres;
pub mod redis;
pub mod tls;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
