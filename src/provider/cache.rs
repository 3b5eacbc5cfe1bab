//! The opt-in response cache (`run --cache`): an embedded, crash-safe key-value store (redb).
//!
//! A key is the SHA-256 of everything that shapes an answer — the provider's identity (kind,
//! endpoint, model, parameters), the system message, the rendered prompt, the trial and a replayed
//! conversation, if there is one — so a
//! changed prompt or parameter is a miss, never a stale hit. Only successful answers are stored;
//! a hit keeps the latency recorded when it was fetched and is marked `cached`.

use std::path::Path;

use redb::{Database, Durability, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::provider::{Request, Usage};

const RESPONSES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("responses_v1");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    pub text: String,
    pub usage: Usage,
    pub usage_estimated: bool,
    pub latency_ms: f64,
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    #[serde(default)]
    pub server_ms: Option<f64>,
}

pub struct Cache {
    db: Database,
}

impl Cache {
    pub fn open(path: &Path) -> anyhow::Result<Cache> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // redb lets one process at a time open a database. Another run into the same output
        // directory waits for it rather than failing: the cache is shared in turn, and a run that
        // asked for it never silently runs (and pays) without it.
        let mut said = false;
        loop {
            match Database::create(path) {
                Ok(db) => return Ok(Cache { db }),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    if !said {
                        eprintln!(
                            "waiting for the response cache {}: another goldgate run is using it",
                            path.display()
                        );
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot open the response cache {}", path.display())
                    });
                }
            }
        }
    }

    pub fn key(identity: &str, request: &Request) -> [u8; 32] {
        // Chat-speaking providers send the conversation itself, not its flattened prompt: two
        // conversations that flatten alike (tool calls, parameters) may well be answered apart.
        // Only a present chat is a part, so the keys of plain requests stay what they were.
        let chat = request
            .chat
            .as_ref()
            .map(|chat| serde_json::to_string(chat.as_ref()).unwrap_or_default());
        let mut h = Sha256::new();
        for part in [
            identity,
            request.system.as_deref().unwrap_or(""),
            &request.prompt,
            &request.trial.to_string(),
        ]
        .into_iter()
        .chain(chat.as_deref())
        {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// A stored answer, if any. A damaged entry reads as a miss.
    pub fn get(&self, key: &[u8; 32]) -> Option<Cached> {
        let txn = self.db.begin_read().ok()?;
        let table = txn.open_table(RESPONSES).ok()?;
        let value = table.get(key.as_slice()).ok()??;
        serde_json::from_slice(value.value()).ok()
    }

    /// Store an answer. A failure to store only costs a later miss, so it is not an error.
    pub fn put(&self, key: &[u8; 32], value: &Cached) {
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        let Ok(mut txn) = self.db.begin_write() else {
            return;
        };
        // Consistent after a crash, flushed by the OS in its own time: a lost tail is a few misses.
        txn.set_durability(Durability::Eventual);
        let stored = match txn.open_table(RESPONSES) {
            Ok(mut table) => table.insert(key.as_slice(), bytes.as_slice()).is_ok(),
            Err(_) => false,
        };
        if stored {
            let _ = txn.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str, trial: u32) -> Request {
        Request {
            system: None,
            prompt: prompt.into(),
            question: String::new(),
            context: Vec::new(),
            trial,
            chat: None,
        }
    }

    #[test]
    fn round_trip_and_keys_separate_what_shapes_an_answer() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(&d.path().join("c/responses.redb")).unwrap();
        let k = Cache::key("openai gpt-4o t=0", &request("hi", 0));
        assert!(cache.get(&k).is_none());
        let v = Cached {
            text: "hello".into(),
            usage: Usage {
                input: 3,
                output: 1,
            },
            usage_estimated: false,
            latency_ms: 812.5,
            ttft_ms: None,
            server_ms: None,
        };
        cache.put(&k, &v);
        assert_eq!(cache.get(&k).unwrap().text, "hello");
        assert_ne!(k, Cache::key("openai gpt-4o t=0", &request("hi", 1)));
        assert_ne!(k, Cache::key("openai gpt-4o t=0.7", &request("hi", 0)));
        assert_ne!(k, Cache::key("openai gpt-4o t=0", &request("hi!", 0)));
        drop(cache);
        let reopened = Cache::open(&d.path().join("c/responses.redb")).unwrap();
        assert_eq!(reopened.get(&k).unwrap().latency_ms, 812.5);
    }

    #[test]
    fn a_replayed_chat_is_part_of_the_key() {
        use std::sync::Arc;

        use crate::provider::Chat;

        let with = |chat: Chat| Request {
            chat: Some(Arc::new(chat)),
            ..request("hi", 0)
        };
        let chat = |temperature: f64| Chat {
            messages: vec![serde_json::json!({"role": "user", "content": "hi"})],
            params: serde_json::json!({ "temperature": temperature })
                .as_object()
                .unwrap()
                .clone(),
        };
        let id = "openai gpt-4o t=0";
        let plain = Cache::key(id, &request("hi", 0));
        assert_ne!(plain, Cache::key(id, &with(chat(0.0))));
        assert_ne!(
            Cache::key(id, &with(chat(0.0))),
            Cache::key(id, &with(chat(0.7))),
            "same flattened prompt, different chats"
        );
        assert_eq!(
            Cache::key(id, &with(chat(0.7))),
            Cache::key(id, &with(chat(0.7)))
        );
        assert_ne!(
            Cache::key(id, &with(Chat::default())),
            plain,
            "even an empty chat"
        );
    }
}
