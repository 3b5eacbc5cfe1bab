//! A minimal OpenAI-compatible chat completions server for measuring goldgate's own overhead:
//! every request is answered after a fixed latency (plus optional uniform jitter), with usage.
//! It measures its own service time, so a benchmark can compare goldgate's latency figures with
//! the truth, and it can load itself to show it is not the bottleneck.
//!
//!     cargo run --release --example bench_server -- serve 127.0.0.1:0 50 0
//!     cargo run --release --example bench_server -- load http://127.0.0.1:PORT 5 256
//!
//! `serve ADDR LATENCY_MS JITTER_MS` prints `listening on ADDR`; `GET /stats` returns the service
//! times it measured. `load URL SECONDS CONCURRENCY` prints requests per second as JSON.
//!
//! Every answer is right (it holds the benchmark golden set's keyword, "30 days") unless
//! `BENCH_ACCURACY` gives models an accuracy, e.g. `BENCH_ACCURACY="current=0.90,candidate=0.85"`:
//! then a request whose body names a listed `model` with rate r is answered right only when
//! u < r, and otherwise "I cannot say." (with usage). u in [0, 1) is a hash of the request's last
//! user message alone, so it is the same for every model: outcomes are paired item by item, as
//! two versions of one model's are (0.85 against 0.90 fails exactly the items with
//! 0.85 <= u < 0.90). Models not listed, and every model without the variable, are always right;
//! the body is parsed only when the variable is set.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

const ANSWER: &str = r#"{"id":"bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The refund window is 30 days from delivery."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":12,"total_tokens":132}}"#;
/// The answer of a model that gets the item wrong (see `BENCH_ACCURACY`): no keyword.
const WRONG: &str = r#"{"id":"bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"I cannot say."},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":4,"total_tokens":124}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("load") => runtime.block_on(load(
            args.get(1).cloned().unwrap_or_default(),
            args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5.0),
            args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256),
        )),
        _ => runtime.block_on(serve(
            args.get(1).map_or("127.0.0.1:0", String::as_str).to_owned(),
            args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50.0),
            args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.0),
        )),
    }
}

type Stats = Arc<Mutex<hdrhistogram::Histogram<u64>>>;

/// Each listed model's accuracy, from `BENCH_ACCURACY` (`model=rate,...`); empty when unset.
type Accuracy = Arc<Vec<(String, f64)>>;

fn accuracy_from_env() -> Accuracy {
    let Ok(spec) = std::env::var("BENCH_ACCURACY") else {
        return Arc::new(Vec::new());
    };
    let mut rates = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let rate = part
            .split_once('=')
            .and_then(|(model, rate)| Some((model.trim(), rate.trim().parse::<f64>().ok()?)))
            .filter(|(model, rate)| !model.is_empty() && (0.0..=1.0).contains(rate));
        let Some((model, rate)) = rate else {
            eprintln!(
                "error: BENCH_ACCURACY: `{part}` is not MODEL=RATE with RATE in [0, 1] \
                 (e.g. BENCH_ACCURACY=\"current=0.90,candidate=0.85\")"
            );
            std::process::exit(2);
        };
        rates.push((model.to_owned(), rate));
    }
    Arc::new(rates)
}

/// The part of a chat completions request the accuracy needs.
#[derive(serde::Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    messages: Vec<Message<'a>>,
}

#[derive(serde::Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    content: std::borrow::Cow<'a, str>,
}

/// Whether the model this request names answers it right: always, unless `BENCH_ACCURACY` lists
/// the model; then when the prompt's uniform number is below the model's rate.
fn answers_right(body: &[u8], accuracy: &[(String, f64)]) -> bool {
    let Ok(request) = serde_json::from_slice::<ChatRequest>(body) else {
        return true;
    };
    let Some(&(_, rate)) = accuracy.iter().find(|(m, _)| *m == request.model) else {
        return true;
    };
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| &m.content);
    uniform(prompt) < rate
}

/// A number in [0, 1) fixed by the text alone: FNV-1a, then splitmix64's finalizer to spread
/// prompts that differ in a digit or two.
fn uniform(text: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

async fn serve(addr: String, latency_ms: f64, jitter_ms: f64) {
    let accuracy = accuracy_from_env();
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    let stats: Stats = Arc::new(Mutex::new(
        hdrhistogram::Histogram::new(3).expect("histogram"),
    ));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (stats, accuracy) = (stats.clone(), accuracy.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                answer(req, latency_ms, jitter_ms, stats.clone(), accuracy.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    latency_ms: f64,
    jitter_ms: f64,
    stats: Stats,
    accuracy: Accuracy,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    if req.uri().path() == "/stats" {
        let h = stats.lock().expect("stats");
        let body = format!(
            "{{\"count\": {}, \"p50_ms\": {}, \"p99_ms\": {}, \"mean_ms\": {}}}",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.mean() / 1000.0
        );
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    let body = req.into_body().collect().await;
    let right =
        accuracy.is_empty() || body.map_or(true, |b| answers_right(&b.to_bytes(), &accuracy));
    let delay = latency_ms
        + if jitter_ms > 0.0 {
            fastrand_f64() * jitter_ms
        } else {
            0.0
        };
    if delay > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
    }
    let response = Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            if right { ANSWER } else { WRONG }.as_bytes(),
        )))
        .expect("response");
    let us = u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let _ = stats.lock().expect("stats").record(us);
    Ok(response)
}

/// Load the server with `concurrency` clients for `seconds`: its capacity, with no goldgate.
async fn load(url: String, seconds: f64, concurrency: usize) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let body =
        r#"{"model":"m","messages":[{"role":"user","content":"How long is the refund window?"}]}"#;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), format!("{url}/v1/chat/completions"));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if let Ok(r) = client
                    .post(&url)
                    .body(body)
                    .header("content-type", "application/json")
                    .send()
                    .await
                    && r.bytes().await.is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"requests\": {total}, \"seconds\": {elapsed:.2}, \"requests_per_s\": {:.0}}}",
        total as f64 / elapsed
    );
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
