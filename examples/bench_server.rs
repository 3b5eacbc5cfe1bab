//! A minimal OpenAI-compatible chat completions server for measuring goldgate's own overhead:
//! every request is answered after a fixed latency (plus optional uniform jitter), with usage.
//!
//!     cargo run --release --example bench_server -- 127.0.0.1:0 50 0
//!
//! Arguments: listen address, latency in ms, jitter in ms. Prints `listening on ADDR` first.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .map_or("127.0.0.1:0", String::as_str)
        .to_owned();
    let latency_ms: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(50.0);
    let jitter_ms: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("listening on {}", listener.local_addr().expect("addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| answer(req, latency_ms, jitter_ms));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    req: Request<Incoming>,
    latency_ms: f64,
    jitter_ms: f64,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = req.into_body().collect().await;
    let delay = latency_ms
        + if jitter_ms > 0.0 {
            fastrand_f64() * jitter_ms
        } else {
            0.0
        };
    if delay > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
    }
    let body = r#"{"id":"bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The refund window is 30 days from delivery."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":12,"total_tokens":132}}"#;
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("response"))
}

fn fastrand_f64() -> f64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) });
    STATE.with(|s| {
        // xorshift64*: enough for jitter, no dependency.
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}
