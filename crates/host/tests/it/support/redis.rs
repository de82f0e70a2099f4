//! The test's view of a real `redis-server` (`crm_testkit::redis`): connections and the
//! ids in a tenant's stream.

pub use crm_testkit::redis::RedisServer;

pub async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

/// The `id` field of every entry of a tenant's stream, in stream order.
pub async fn stream_ids(server: &RedisServer, tenant: &str) -> Vec<String> {
    let mut conn = conn(server).await;
    let reply: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut conn, format!("crm:{tenant}:activities"))
            .await
            .expect("xrange");
    reply
        .ids
        .iter()
        .map(|e| e.get::<String>("id").expect("id field"))
        .collect()
}
