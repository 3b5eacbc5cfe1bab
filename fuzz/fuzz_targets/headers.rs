//! Response headers: `name: value` lines (Retry-After, retry-after-ms, x-ratelimit-reset-*, or
//! anything) give a wait of at most `MAX_SERVER_WAIT`, or none; never a panic.

#![no_main]

use goldgate::fuzzing::{
    HeaderMap, HeaderName, HeaderValue, MAX_SERVER_WAIT, retry_after, server_wait,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        // What an HTTP client would not hand over (a bad name, a NUL in a value) never arrives.
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    if let Some(wait) = retry_after(&headers) {
        assert!(wait <= MAX_SERVER_WAIT, "{wait:?} from {headers:?}");
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        let secs = f64::from_le_bytes(*bytes);
        if let Some(wait) = server_wait(secs) {
            assert!(wait <= MAX_SERVER_WAIT, "{wait:?} from {secs}");
        }
    }
});
