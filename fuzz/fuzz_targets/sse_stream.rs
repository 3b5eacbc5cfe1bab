//! A streamed chat completion (server-sent events, `kind = "openai"` with `stream = true`): any
//! body, cut into chunks anywhere (the first byte says where), gives an answer or a classified
//! error, the same however it was cut, never a panic.

#![no_main]

use goldgate::fuzzing::read_stream_chunks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    // Chunks of 1 to 16 bytes, cut inside lines and UTF-8 characters alike.
    let size = usize::from(cut % 16) + 1;
    let outcome = |chunks: Vec<&[u8]>| {
        read_stream_chunks(chunks)
            .map(|c| (c.text, c.usage))
            .map_err(|e| (e.kind, e.message, e.status, e.transient))
    };
    let whole = outcome(vec![body]);
    let chunked = outcome(body.chunks(size).collect());
    assert_eq!(whole, chunked, "chunks of {size} bytes");
    if let Ok((text, _)) = &whole {
        // Every character of the answer comes from at least one byte of the body. (Not every
        // byte: the stream is decoded as UTF-8 with errors replaced, as the EventSource standard
        // says, and one invalid byte becomes U+FFFD, three bytes.)
        assert!(text.chars().count() <= body.len(), "more answer than body");
    }
});
