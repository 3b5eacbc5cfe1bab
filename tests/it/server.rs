//! A real OpenAI-compatible HTTP server on loopback, in the test process, whose every reply is
//! scripted: normal answers, 429 with Retry-After, 5xx, slow or hung replies, broken JSON,
//! connections dropped mid-body. It records what it was sent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with a chat completion; `usage` as (prompt, completion) tokens, or none.
    Answer {
        text: String,
        usage: Option<(u64, u64)>,
        delay: Duration,
    },
    /// Any status, with an optional Retry-After header value.
    Status {
        code: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// 200 whose body is not JSON.
    BrokenJson,
    /// 200 with a JSON body that has no choices.
    NoChoices,
    /// Sleep this long before answering (past the client's timeout, typically).
    Hang(Duration),
    /// Headers promise a body; the connection dies after a few bytes of it.
    DropMidBody,
    /// 200 with a valid chat completion whose answer is `n` bytes long.
    Big(usize),
    /// 200 whose body is not UTF-8.
    NonUtf8,
    /// Any status, headers and body (content type JSON unless a header says otherwise), after
    /// `delay`: the shape of any API.
    Json {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
        delay: Duration,
    },
    /// 200 `text/event-stream`: each chunk is sent `gap` after the previous one (the first too),
    /// then the body ends cleanly.
    Stream { chunks: Vec<String>, gap: Duration },
    /// A recorded response replayed byte for byte: status, headers, and the body in the chunks
    /// it arrived in, `gap` apart (the first too); `cut`: the connection then dies inside the
    /// body, as it did when recorded.
    Raw {
        code: u16,
        headers: Vec<(String, String)>,
        chunks: Vec<Vec<u8>>,
        gap: Duration,
        cut: bool,
    },
}

impl Reply {
    pub fn answer(text: &str) -> Reply {
        Reply::Answer {
            text: text.to_owned(),
            usage: Some((100, 20)),
            delay: Duration::ZERO,
        }
    }

    /// 200 with this JSON body.
    pub fn json(body: serde_json::Value) -> Reply {
        Reply::Json {
            code: 200,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// An OpenAI chat-completion stream: one content delta per piece, a `finish_reason`, then a
    /// usage chunk and `[DONE]`, `gap` apart.
    pub fn sse(pieces: &[&str], usage: (u64, u64), gap: Duration) -> Reply {
        let mut chunks = vec![
            r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
                .to_owned()
                + "\n\n",
        ];
        for piece in pieces {
            let v = serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}]});
            chunks.push(format!("data: {v}\n\n"));
        }
        chunks.push(
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_owned()
                + "\n\n",
        );
        let v = serde_json::json!({"choices": [], "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1}});
        chunks.push(format!("data: {v}\n\n"));
        chunks.push("data: [DONE]\n\n".to_owned());
        Reply::Stream { chunks, gap }
    }
}

/// What the script sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request path (and query).
    pub path: String,
    /// Every request header, names lowercased.
    pub headers: Vec<(String, String)>,
    /// `model` of a JSON body, or empty.
    pub model: String,
    /// The last message's text (OpenAI, Anthropic, Ollama shapes) or a top-level `prompt`,
    /// `question` or `q` string, or empty.
    pub prompt: String,
    pub authorization: Option<String>,
    /// 1 for the first request with this (model, prompt), 2 for its first retry, …
    pub attempt: u32,
    pub at: Instant,
    /// The raw request body, for asserting on the request shape.
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// The prompt of a request body, whichever API shape it has.
fn prompt_of(json: &serde_json::Value) -> String {
    let text_of = |content: &serde_json::Value| -> Option<String> {
        match content {
            serde_json::Value::String(s) => Some(s.clone()),
            // Content blocks: [{"type": "text", "text": "…"}]
            serde_json::Value::Array(blocks) => Some(
                blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<String>(),
            ),
            _ => None,
        }
    };
    if let Some(p) = json["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| text_of(&m["content"]))
    {
        return p;
    }
    ["prompt", "question", "q"]
        .iter()
        .find_map(|k| json[k].as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub type Script = dyn Fn(&Seen) -> Reply + Send + Sync;

struct State {
    script: Box<Script>,
    attempts: Mutex<HashMap<(String, String), u32>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: Mutex<HashMap<String, usize>>,
    in_flight_total: AtomicUsize,
    max_in_flight_total: AtomicUsize,
}

pub struct MockServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MockServer {
    pub fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> MockServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(State {
            script: Box::new(script),
            attempts: Mutex::default(),
            seen: Mutex::default(),
            in_flight: Mutex::default(),
            max_in_flight: Mutex::default(),
            in_flight_total: AtomicUsize::new(0),
            max_in_flight_total: AtomicUsize::new(0),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        MockServer {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The model of every request after the first `before`, in arrival order: which models a
    /// step called.
    pub fn models_since(&self, before: usize) -> Vec<String> {
        self.state.seen.lock().unwrap()[before..]
            .iter()
            .map(|s| s.model.clone())
            .collect()
    }

    /// The most requests for one model that were ever in flight at once.
    pub fn max_in_flight(&self, model: &str) -> usize {
        self.state
            .max_in_flight
            .lock()
            .unwrap()
            .get(model)
            .copied()
            .unwrap_or(0)
    }

    /// The most requests, across models, ever in flight at once.
    pub fn max_in_flight_total(&self) -> usize {
        self.state.max_in_flight_total.load(Ordering::SeqCst)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or_default().to_owned();
    let prompt = prompt_of(&json);
    let attempt = {
        let mut a = state.attempts.lock().unwrap();
        let n = a.entry((model.clone(), prompt.clone())).or_insert(0);
        *n += 1;
        *n
    };
    let seen = Seen {
        method,
        path,
        headers,
        model: model.clone(),
        prompt,
        authorization,
        attempt,
        at: Instant::now(),
        body,
    };
    let reply = (state.script)(&seen);
    state.seen.lock().unwrap().push(seen);

    {
        let mut inf = state.in_flight.lock().unwrap();
        let n = inf.entry(model.clone()).or_insert(0);
        *n += 1;
        let mut max = state.max_in_flight.lock().unwrap();
        let m = max.entry(model.clone()).or_insert(0);
        *m = (*m).max(*n);
        let total = state.in_flight_total.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight_total.fetch_max(total, Ordering::SeqCst);
    }
    let response = respond(reply).await;
    *state.in_flight.lock().unwrap().get_mut(&model).unwrap() -= 1;
    state.in_flight_total.fetch_sub(1, Ordering::SeqCst);
    Ok(response)
}

async fn respond(reply: Reply) -> Response<Body> {
    let json = |code: u16, body: String| {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap()
    };
    match reply {
        Reply::Answer { text, usage, delay } => {
            tokio::time::sleep(delay).await;
            let mut v = serde_json::json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            });
            if let Some((p, c)) = usage {
                v["usage"] = serde_json::json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
            }
            json(200, v.to_string())
        }
        Reply::Status {
            code,
            retry_after,
            body,
        } => {
            let mut r = Response::builder().status(StatusCode::from_u16(code).unwrap());
            if let Some(ra) = retry_after {
                r = r.header("retry-after", ra);
            }
            r.body(full(body)).unwrap()
        }
        Reply::BrokenJson => json(
            200,
            "{\"choices\": [{\"message\": {\"content\": \"trunc".to_owned(),
        ),
        Reply::NoChoices => json(200, "{\"choices\": []}".to_owned()),
        Reply::Big(n) => {
            let v = serde_json::json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(n)}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            });
            json(200, v.to_string())
        }
        Reply::NonUtf8 => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(full(
                &b"{\"choices\": [{\"message\": {\"content\": \"\xff\xfe\"}, \"finish_reason\": \"stop\"}]}"[..],
            ))
            .unwrap(),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            json(200, "{}".to_owned())
        }
        Reply::DropMidBody => {
            // The pause lets the headers and the first bytes reach the client before the
            // connection dies: a cut inside the body, not a refused request.
            let chunks = futures::StreamExt::then(futures::stream::iter([true, false]), |first| async move {
                if first {
                    Ok(Frame::data(Bytes::from_static(b"{\"choices\": [{\"mess")))
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(std::io::Error::other("connection dropped by the test server"))
                }
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("content-length", "500")
                .body(StreamBody::new(chunks).boxed())
                .unwrap()
        }
        Reply::Json {
            code,
            headers,
            body,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut r = Response::builder().status(StatusCode::from_u16(code).unwrap());
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                r = r.header("content-type", "application/json");
            }
            for (n, v) in headers {
                r = r.header(n, v);
            }
            r.body(full(body)).unwrap()
        }
        Reply::Raw {
            code,
            headers,
            chunks,
            gap,
            cut,
        } => {
            let data = futures::StreamExt::then(futures::stream::iter(chunks), move |chunk| async move {
                tokio::time::sleep(gap).await;
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk)))
            });
            // The wait lets the last chunk reach the wire before the connection dies.
            let end = futures::StreamExt::then(futures::stream::iter(cut.then_some(())), move |()| async move {
                tokio::time::sleep(gap).await;
                Err(std::io::Error::other("connection closed inside the body, as recorded"))
            });
            let frames = futures::StreamExt::chain(data, end);
            let mut r = Response::builder().status(StatusCode::from_u16(code).unwrap());
            for (n, v) in headers {
                r = r.header(n, v);
            }
            r.body(StreamBody::new(frames).boxed()).unwrap()
        }
        Reply::Stream { chunks, gap } => {
            let frames =
                futures::StreamExt::then(futures::stream::iter(chunks), move |chunk| async move {
                    tokio::time::sleep(gap).await;
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk)))
                });
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(StreamBody::new(frames).boxed())
                .unwrap()
        }
    }
}
