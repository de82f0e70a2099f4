//! `crm-host bench echo-server` / `echo-client`: the TCP round trip the checks' latency
//! is stated beside. What it reports is ordered percentiles of real echoes.

use std::net::TcpListener;

use crm_host::cli::tcp_floor::{echo, round_trips};

#[test]
fn round_trips_through_the_echo_server_are_timed_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("bound");
    std::thread::spawn(move || echo(&listener));
    let floor = round_trips(addr, 300, 256).expect("echoes");
    assert_eq!((floor.round_trips, floor.bytes), (300, 256));
    assert!(floor.p50_us > 0.0, "{floor:?}");
    assert!(
        floor.p50_us <= floor.p99_us && floor.p99_us <= floor.max_us,
        "{floor:?}"
    );
    // A second connection is served after the first closes.
    assert!(round_trips(addr, 10, 3).is_ok());
}

#[test]
fn no_round_trips_and_wrong_echoes_are_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("bound");
    std::thread::spawn(move || echo(&listener));
    assert!(round_trips(addr, 0, 256).is_err());
    assert!(round_trips(addr, 5, 0).is_err());
    // A "server" that answers with other bytes.
    let liar = TcpListener::bind("127.0.0.1:0").expect("binds");
    let liar_addr = liar.local_addr().expect("bound");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = liar.accept().expect("accepts");
        let mut buf = [0u8; 16];
        s.read_exact(&mut buf).expect("reads");
        s.write_all(&[0xff; 16]).expect("writes");
    });
    let err = round_trips(liar_addr, 1, 16).expect_err("wrong bytes");
    assert!(err.to_string().contains("other bytes"), "{err}");
}
