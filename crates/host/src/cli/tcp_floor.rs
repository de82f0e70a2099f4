//! `crm-host bench echo-server` / `echo-client`: the floor under any HTTP round trip on
//! this machine — one process echoing fixed-size messages over loopback TCP with
//! blocking sockets, another timing each round trip. `cargo xtask bench` pins them to
//! the CPUs the permission checks' server and load generator use, so the checks' p50
//! is stated beside what the kernel and the CPUs' wake-ups alone cost.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use serde::Serialize;

/// A permission check's request is about this size on the wire.
pub const DEFAULT_MESSAGE_BYTES: usize = 256;

#[derive(Debug, clap::Args)]
pub struct EchoServerArgs {
    #[arg(long)]
    listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
pub struct EchoClientArgs {
    #[arg(long)]
    connect: SocketAddr,
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    #[arg(long, default_value_t = DEFAULT_MESSAGE_BYTES)]
    bytes: usize,
}

/// Echoes every message of every connection, one connection at a time, until killed.
pub fn serve(args: &EchoServerArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)?;
    eprintln!("echo server on {}", listener.local_addr()?);
    echo(&listener)
}

/// Echoes on `listener` until it fails.
pub fn echo(listener: &TcpListener) -> anyhow::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    for stream in listener.incoming() {
        let mut stream = stream?;
        stream.set_nodelay(true)?;
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n])?;
        }
    }
    Ok(())
}

/// Round-trip times through an echo server, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Floor {
    pub round_trips: usize,
    pub bytes: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Times `round_trips` sequential echoes of `bytes` bytes through `server`.
pub fn round_trips(server: SocketAddr, round_trips: usize, bytes: usize) -> anyhow::Result<Floor> {
    anyhow::ensure!(round_trips > 0, "--round-trips must be at least 1");
    anyhow::ensure!(bytes > 0, "--bytes must be at least 1");
    let mut stream = TcpStream::connect(server)?;
    stream.set_nodelay(true)?;
    let sent: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; bytes];
    let mut micros: Vec<f64> = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let start = Instant::now();
        stream.write_all(&sent)?;
        stream.read_exact(&mut back)?;
        micros.push(start.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(back == sent, "the echo server answered other bytes");
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    Ok(Floor {
        round_trips,
        bytes,
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: at(1.0),
    })
}

/// `echo-client`: [`round_trips`], printed as JSON.
pub fn measure(args: &EchoClientArgs) -> anyhow::Result<()> {
    let floor = round_trips(args.connect, args.round_trips, args.bytes)?;
    println!("{}", serde_json::to_string(&floor)?);
    Ok(())
}
