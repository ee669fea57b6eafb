//! The proxy's counters in Prometheus text format on `GET /metrics`. Encoding is
//! prometheus-client's; the endpoint is [`crate::http`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Counters;

/// The counters as a Prometheus text document.
pub fn render(c: &Counters) -> String {
    let mut registry = Registry::with_prefix("ntm_proxy");
    let bytes = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("bytes", "Bytes relayed, by direction", bytes.clone());
    for (dir, v) in [("up", &c.bytes_up), ("down", &c.bytes_down)] {
        bytes
            .get_or_create(&vec![("direction".into(), dir.into())])
            .inc_by(v.load(Ordering::Relaxed));
    }
    let counter = |name: &str, help: &str, value: u64, registry: &mut Registry| {
        let m = Counter::<u64>::default();
        m.inc_by(value);
        registry.register(name, help, m);
    };
    counter(
        "connections",
        "Connections accepted",
        c.connections.load(Ordering::Relaxed),
        &mut registry,
    );
    counter(
        "flights",
        "Flights (runs of data in one direction) seen",
        c.flights.load(Ordering::Relaxed),
        &mut registry,
    );
    counter(
        "upstream_failures",
        "Connections whose upstream could not be reached",
        c.upstream_failures.load(Ordering::Relaxed),
        &mut registry,
    );
    let open = Gauge::<i64>::default();
    open.set(c.open.load(Ordering::Relaxed) as i64);
    registry.register("open_connections", "Connections open now", open);
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// Serves `GET /metrics` with these counters on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, counters: Arc<Counters>, shutdown: CancellationToken) {
    crate::http::serve_metrics(listener, Arc::new(move || render(&counters)), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_counters() {
        let c = Counters::default();
        c.bytes_up.store(1234, Ordering::Relaxed);
        c.connections.store(3, Ordering::Relaxed);
        let text = render(&c);
        assert!(
            text.contains("ntm_proxy_bytes_total{direction=\"up\"} 1234"),
            "{text}"
        );
        assert!(text.contains("ntm_proxy_connections_total 3"), "{text}");
        assert!(text.contains("ntm_proxy_open_connections 0"), "{text}");
    }
}
