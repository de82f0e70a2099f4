//! The test's view of a real `redis-server` (`crm_testkit::redis`): connections, the ids
//! in a tenant's activity stream and the events in its alert stream.

pub use crm_testkit::redis::RedisServer;

pub async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

/// One field of every entry of the stream `key`, in stream order.
async fn stream_field(server: &RedisServer, key: String, field: &str) -> Vec<String> {
    let mut conn = conn(server).await;
    let reply: redis::streams::StreamRangeReply = redis::AsyncCommands::xrange_all(&mut conn, key)
        .await
        .expect("xrange");
    reply
        .ids
        .iter()
        .map(|e| e.get::<String>(field).expect("the field"))
        .collect()
}

/// The alert events in a tenant's alert stream (`crm:{tenant}:alerts`), oldest first.
pub async fn stream_alerts(server: &RedisServer, tenant: &str) -> Vec<serde_json::Value> {
    stream_field(server, format!("crm:{tenant}:alerts"), "alert")
        .await
        .iter()
        .map(|text| serde_json::from_str(text).expect("an alert event is JSON"))
        .collect()
}

/// The `id` field of every entry of a tenant's stream, in stream order.
pub async fn stream_ids(server: &RedisServer, tenant: &str) -> Vec<String> {
    stream_field(server, format!("crm:{tenant}:activities"), "id").await
}

/// The records in a tenant's activity stream (`activity` field), in stream order.
pub async fn stream_activities(server: &RedisServer, tenant: &str) -> Vec<serde_json::Value> {
    stream_field(server, format!("crm:{tenant}:activities"), "activity")
        .await
        .iter()
        .map(|text| serde_json::from_str(text).expect("a record is JSON"))
        .collect()
}
