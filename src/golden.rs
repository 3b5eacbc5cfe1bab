//! Golden sets: `golden.toml` + `items.jsonl`, strictly validated, hashed canonically, locked.
//!
//! The items file is read once, line by line; each item is validated and kept as its canonical
//! JSON in [`Items`], so a large set costs about its text in memory and no more.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::{CheckSpec, Patterns};
use crate::error::{Error, Location, Problem, read_input};

/// How a golden set's SHA-256 is written (lower-case hex), for tools that check one.
pub use crate::text::hex;

/// Stop collecting after this many problems: past it, the user has a systematic error to fix first.
const MAX_PROBLEMS: usize = 20;

/// The item fields, for "did you mean" suggestions on a typo.
const ITEM_FIELDS: &[&str] = &[
    "id",
    "question",
    "keywords",
    "match",
    "forbidden",
    "context",
    "expected",
    "label",
    "tags",
    "group",
    "checks",
    "reference",
    "provenance",
];

/// `golden.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenMeta {
    pub name: String,
    pub version: u64,
    #[serde(default)]
    pub description: Option<String>,
    /// Written by `goldgate golden lock`: the canonical hash of the items.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The `version` the lock was taken at, so `lock` can tell whether the user already bumped it.
    #[serde(default)]
    pub locked_version: Option<u64>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    #[default]
    Any,
    All,
}

impl MatchMode {
    fn is_any(&self) -> bool {
        *self == MatchMode::Any
    }
}

/// One golden item. Field order is the canonical serialisation order the hash is taken over.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub question: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, rename = "match", skip_serializing_if = "MatchMode::is_any")]
    pub match_mode: MatchMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<String>,
    #[serde(
        default,
        deserialize_with = "string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub context: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Items that are not independent (several questions on one passage) share a group:
    /// standard errors are clustered on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Format checks of this item: `[{"type": "regex", "pattern": "…"}, {"type": "json"}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSpec>,
    /// An answer for a person to read while writing the item's checks (`golden from-log` puts
    /// the production answer here). Never scored: `expected` is what similarity compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Where the item came from, when it was taken from logged traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<ItemProvenance>,
}

/// The logged request an item was taken from (`goldgate golden from-log`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ItemProvenance {
    /// The log file, as it was given.
    pub file: String,
    /// The line of the request in that file, from 1.
    pub line: u64,
    /// When the request was made (RFC 3339, UTC), where the log says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The log's own id of the request, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Item {
    pub fn has_context(&self) -> bool {
        self.context.iter().any(|c| !c.trim().is_empty())
    }

    /// The context passages joined the way the prompt shows them.
    pub fn context_text(&self) -> String {
        self.context.join("\n\n")
    }
}

/// The items of a golden set, held compactly: each item's canonical JSON in one shared buffer,
/// with its id and tags beside it, and parsed again where it is used. A 100,000-item set costs
/// about its text in memory (25 MB for the benchmark's set), not a tree of small allocations per
/// item (70 MB); parsing an item back takes about a microsecond, once per item per run.
#[derive(Debug, Clone, Default)]
pub struct Items {
    /// The items' canonical JSON (what the set's hash is taken over), one after another.
    json: Vec<u8>,
    /// The items' ids, one after another: lookups and reports need them without a parse.
    ids: String,
    /// Each item's tags as indices into `tag_names`, one list after another: every result is
    /// tallied under its item's tags.
    tags: Vec<u32>,
    tag_names: Vec<String>,
    tag_index: HashMap<String, u32>,
    /// Where each item ends in `json`, `ids` and `tags`.
    ends: Vec<ItemEnd>,
    /// The items by id, for [`Items::position`].
    by_id: IdIndex,
}

#[derive(Debug, Clone, Copy, Default)]
struct ItemEnd {
    json: usize,
    id: usize,
    tags: usize,
}

/// An open-addressing hash table of item numbers, keyed by the ids in [`Items`]: finding an
/// item by id (every result line is matched to its item so) costs 4 to 8 bytes per item, where a
/// `HashMap` from id to index costs a copy or a borrow of every id plus the index (50 bytes per
/// item, 100 with owned ids: 100 MB for a million items).
#[derive(Debug, Clone, Default)]
struct IdIndex {
    /// Item number + 1 per slot, 0 for an empty slot. The length is a power of two, and at most
    /// half of the slots are taken, so a probe ends soon.
    slots: Vec<u32>,
    /// Seeded per process (SipHash): ids come from files anyone can write, and a fixed hash would
    /// let a crafted golden set make every lookup a scan.
    hasher: std::hash::RandomState,
}

impl Items {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn start(&self, i: usize) -> ItemEnd {
        i.checked_sub(1)
            .map_or_else(ItemEnd::default, |p| self.ends[p])
    }

    /// Add an item.
    pub fn push(&mut self, item: &Item) {
        let json = serde_json::to_vec(item).expect("items always serialise");
        self.push_parts(item, &json);
    }

    /// Add an item whose canonical JSON is already at hand.
    fn push_parts(&mut self, item: &Item, json: &[u8]) {
        self.push_raw(json, &item.id, item.tags.iter().map(String::as_str));
    }

    fn push_raw<'t>(&mut self, json: &[u8], id: &str, tags: impl Iterator<Item = &'t str>) {
        self.json.extend_from_slice(json);
        self.ids.push_str(id);
        for tag in tags {
            let index = self.intern(tag);
            self.tags.push(index);
        }
        self.ends.push(ItemEnd {
            json: self.json.len(),
            id: self.ids.len(),
            tags: self.tags.len(),
        });
        self.index_last();
    }

    /// Put the last item into the id index; an id pushed again points at its last item, as
    /// collecting `(id, index)` pairs into a map would.
    fn index_last(&mut self) {
        if self.by_id.slots.len() < 2 * self.len() {
            self.by_id.slots = vec![0; (2 * self.len()).next_power_of_two().max(16)];
            for i in 0..self.len() - 1 {
                self.index_item(i);
            }
        }
        self.index_item(self.len() - 1);
    }

    fn index_item(&mut self, i: usize) {
        let (slot, _) = self.slot_of(self.id(i));
        self.by_id.slots[slot] = u32::try_from(i + 1).expect("fewer than 2^32 items");
    }

    /// The slot that holds `id`, with its item, or the empty slot where it would go.
    fn slot_of(&self, id: &str) -> (usize, Option<usize>) {
        use std::hash::BuildHasher;
        let mask = self.by_id.slots.len() - 1;
        // Truncating the 64-bit hash keeps its low bits, which are the ones the mask keeps.
        let mut slot = self.by_id.hasher.hash_one(id) as usize & mask;
        loop {
            match self.by_id.slots[slot] {
                0 => return (slot, None),
                n if self.id(n as usize - 1) == id => return (slot, Some(n as usize - 1)),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// The number of the item with this id (the last one, if a file repeats an id).
    pub fn position(&self, id: &str) -> Option<usize> {
        if self.by_id.slots.is_empty() {
            return None;
        }
        self.slot_of(id).1
    }

    fn intern(&mut self, tag: &str) -> u32 {
        if let Some(&i) = self.tag_index.get(tag) {
            return i;
        }
        let i = u32::try_from(self.tag_names.len()).expect("fewer than 2^32 distinct tags");
        self.tag_names.push(tag.to_owned());
        self.tag_index.insert(tag.to_owned(), i);
        i
    }

    /// Item `i`, parsed.
    pub fn get(&self, i: usize) -> Item {
        self.get_as(i)
    }

    /// The fields of item `i` that `T` names, parsed alone: a pass over every item that needs
    /// one or two fields allocates nothing for the rest.
    pub fn get_as<'a, T: Deserialize<'a>>(&'a self, i: usize) -> T {
        serde_json::from_slice(self.json(i)).expect("held items are JSON they were serialised to")
    }

    /// Item `i` as canonical JSON (one line).
    pub fn json(&self, i: usize) -> &[u8] {
        &self.json[self.start(i).json..self.ends[i].json]
    }

    pub fn id(&self, i: usize) -> &str {
        &self.ids[self.start(i).id..self.ends[i].id]
    }

    /// The tags of item `i`.
    pub fn tags(&self, i: usize) -> impl Iterator<Item = &str> + Clone + '_ {
        self.tags[self.start(i).tags..self.ends[i].tags]
            .iter()
            .map(|&t| self.tag_names[t as usize].as_str())
    }

    /// Every tag used by at least one item, in the order first used.
    pub fn tag_names(&self) -> &[String] {
        &self.tag_names
    }

    /// The question of item `i`, parsed alone (reports show it for every item).
    pub fn question(&self, i: usize) -> std::borrow::Cow<'_, str> {
        #[derive(Deserialize)]
        struct Question<'a> {
            #[serde(borrow)]
            question: std::borrow::Cow<'a, str>,
        }
        self.get_as::<Question>(i).question
    }

    /// The items, parsed one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Item> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.id(i))
    }

    /// Copy item `i` of `other` to the end, as it is.
    pub fn push_from(&mut self, other: &Items, i: usize) {
        self.push_raw(other.json(i), other.id(i), other.tags(i));
    }

    /// The items in this order (indices into these items).
    pub fn reordered(&self, order: &[usize]) -> Items {
        let mut out = Items::default();
        for &i in order {
            out.push_from(self, i);
        }
        out.shrink_to_fit();
        out
    }

    /// Keep the items whose id `keep` accepts, in order.
    pub fn retain_ids(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let mut kept = Items::default();
        for i in 0..self.len() {
            if keep(self.id(i)) {
                kept.push_from(self, i);
            }
        }
        kept.shrink_to_fit();
        *self = kept;
    }

    /// Keep the first `n` items.
    pub fn truncate(&mut self, n: usize) {
        let mut seen = 0;
        if n < self.len() {
            self.retain_ids(|_| {
                seen += 1;
                seen <= n
            });
        }
    }

    /// The set's hash: SHA-256 over each item's canonical JSON hashed alone, in id order, so
    /// neither key order, whitespace nor line order changes it. Each item is hashed from the
    /// store as it is reached: a million items need their order (8 MB), not their 32 MB of hashes.
    pub fn canonical_sha256(&self) -> String {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by(|&a, &b| self.id(a).cmp(self.id(b)));
        let mut set = Sha256::new();
        for i in order {
            set.update(Sha256::digest(self.json(i)));
        }
        hex(&set.finalize())
    }

    pub fn shrink_to_fit(&mut self) {
        self.json.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.tags.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

impl FromIterator<Item> for Items {
    fn from_iter<I: IntoIterator<Item = Item>>(iter: I) -> Items {
        let mut items = Items::default();
        for item in iter {
            items.push(&item);
        }
        items.shrink_to_fit();
        items
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct StringOrList;
    impl<'de> Visitor<'de> for StringOrList {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(vec![v])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(StringOrList)
}

/// Whether the items still hash to what `golden lock` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Locked,
    /// Never locked: no `sha256` in `golden.toml`.
    Unlocked,
    /// Items changed since the lock.
    Mismatch {
        locked: String,
    },
}

#[derive(Debug, Clone)]
pub struct GoldenSet {
    pub dir: PathBuf,
    pub meta: GoldenMeta,
    pub items: Items,
    /// The canonical hash of the items as they are now.
    pub sha256: String,
    /// Items that carry no check of their own (no keywords, forbidden, label or checks): unless
    /// the evaluation adds one, such an item passes whenever it is answered.
    pub unchecked: Vec<UncheckedItem>,
    /// The items' regex checks, compiled as they were read.
    pub patterns: Patterns,
}

#[derive(Debug, Clone)]
pub struct UncheckedItem {
    pub id: String,
    /// 1-based line in items.jsonl.
    pub line: usize,
    /// `expected` becomes a check when the evaluation sets `[scoring] similarity`.
    pub has_expected: bool,
}

impl Item {
    /// Whether the item carries a pass/fail check of its own.
    pub fn has_own_check(&self) -> bool {
        !(self.keywords.is_empty()
            && self.forbidden.is_empty()
            && self.label.is_none()
            && self.checks.is_empty())
    }
}

impl GoldenSet {
    pub fn meta_path(dir: &Path) -> PathBuf {
        dir.join("golden.toml")
    }

    pub fn items_path(dir: &Path) -> PathBuf {
        dir.join("items.jsonl")
    }

    /// Load and validate a golden set directory. Every problem found (up to a cap) is reported at once.
    pub fn load(dir: &Path) -> Result<GoldenSet, Error> {
        let meta = load_meta(dir)?;
        let (items, sha256, unchecked, patterns) = load_items(&Self::items_path(dir))?;
        Ok(GoldenSet {
            dir: dir.to_path_buf(),
            meta,
            items,
            sha256,
            unchecked,
            patterns,
        })
    }

    pub fn lock_state(&self) -> LockState {
        match &self.meta.sha256 {
            None => LockState::Unlocked,
            Some(locked) if *locked == self.sha256 => LockState::Locked,
            Some(locked) => LockState::Mismatch {
                locked: locked.clone(),
            },
        }
    }

    /// The error `run` gives for a set that is not locked at its current content.
    pub fn require_locked(&self) -> Result<(), Error> {
        let at = Location::file(Self::meta_path(&self.dir)).field("sha256");
        let dir = self.dir.display();
        match self.lock_state() {
            LockState::Locked => Ok(()),
            LockState::Unlocked => Err(Error::input(
                at,
                "the golden set has never been locked, so a run could not say which version it measured",
                format!(
                    "run `goldgate golden lock {dir}`, or pass --allow-unlocked for a trial run"
                ),
            )),
            LockState::Mismatch { locked } => Err(Error::input(
                at,
                format!(
                    "items.jsonl was edited since version {} was locked (locked {}, now {})",
                    self.meta.version,
                    short(&locked),
                    short(&self.sha256)
                ),
                format!(
                    "run `goldgate golden lock {dir}` (it bumps `version`), or pass --allow-unlocked for a trial run"
                ),
            )),
        }
    }

    pub fn stats(&self) -> GoldenStats {
        let mut s = GoldenStats {
            items: self.items.len(),
            ..GoldenStats::default()
        };
        let mut qlen: Vec<usize> = Vec::with_capacity(self.items.len());
        for item in self.items.iter() {
            s.with_context += usize::from(item.has_context());
            s.with_keywords += usize::from(!item.keywords.is_empty());
            s.match_all += usize::from(item.match_mode == MatchMode::All);
            s.with_forbidden += usize::from(!item.forbidden.is_empty());
            s.with_expected += usize::from(item.expected.is_some());
            s.with_label += usize::from(item.label.is_some());
            s.without_checks += usize::from(!item.has_own_check());
            for tag in &item.tags {
                *s.tags.entry(tag.clone()).or_default() += 1;
            }
            if let Some(label) = &item.label {
                *s.labels.entry(label.clone()).or_default() += 1;
            }
            qlen.push(item.question.chars().count());
        }
        qlen.sort_unstable();
        s.question_chars_median = qlen.get(qlen.len() / 2).copied().unwrap_or(0);
        s.question_chars_max = qlen.last().copied().unwrap_or(0);
        s
    }

    /// Every tag used by at least one item.
    pub fn tags(&self) -> std::collections::BTreeSet<&str> {
        self.items.tag_names().iter().map(String::as_str).collect()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct GoldenStats {
    pub items: usize,
    pub with_context: usize,
    pub with_keywords: usize,
    pub match_all: usize,
    pub with_forbidden: usize,
    pub with_expected: usize,
    pub with_label: usize,
    pub without_checks: usize,
    pub question_chars_median: usize,
    pub question_chars_max: usize,
    pub tags: BTreeMap<String, usize>,
    pub labels: BTreeMap<String, usize>,
}

pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn load_meta(dir: &Path) -> Result<GoldenMeta, Error> {
    let path = GoldenSet::meta_path(dir);
    if !dir.is_dir() {
        return Err(Error::input(
            Location::file(dir),
            "golden set directory not found",
            "point `golden` at a directory holding golden.toml and items.jsonl (`goldgate init` makes one)",
        ));
    }
    let text = read_input(&path, "the golden set's golden.toml")?;
    let meta: GoldenMeta = crate::config::parse_toml(&path, &text)?;
    if meta.name.trim().is_empty() {
        return Err(Error::input(
            Location::file(&path).field("name"),
            "the name is empty",
            "give the set a name, e.g. name = \"support-faq\"",
        ));
    }
    Ok(meta)
}

/// Parse and validate `items.jsonl`, returning the items and their canonical hash.
///
/// The canonical hash does not depend on key order, whitespace or line order: each item is
/// re-serialised in a fixed field order, hashed, and the per-item hashes are hashed in id order.
fn load_items(path: &Path) -> Result<(Items, String, Vec<UncheckedItem>, Patterns), Error> {
    let file = File::open(path).map_err(|e| {
        Error::input(
            Location::file(path),
            format!("cannot open the items file: {e}"),
            "a golden set directory holds items.jsonl, one JSON object per line",
        )
    })?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut items = Items::default();
    // The line of each item kept, to name the first of two with one id.
    let mut lines: Vec<usize> = Vec::new();
    let mut unchecked = Vec::new();
    let mut patterns = Patterns::default();
    let mut problems = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
            Error::input(
                Location::file(path).line(line_no + 1),
                format!("cannot read the items file: {e}"),
                "check the file is readable",
            )
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if problems.len() >= MAX_PROBLEMS {
            continue; // keep counting lines only to say how many there were
        }
        let at = || Location::file(path).line(line_no);
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(e) => {
                problems.push(
                    Problem::new(
                        at(),
                        format!(
                            "the line is not valid UTF-8 (bad byte at offset {} of the line)",
                            e.valid_up_to()
                        ),
                    )
                    .fix("re-save the file as UTF-8"),
                );
                continue;
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            continue; // blank lines carry nothing; tolerating them costs nothing
        }
        let item = match parse_item(text) {
            Ok(item) => item,
            Err((field, message, fix)) => {
                let mut loc = at();
                if let Some(field) = field {
                    loc = loc.field(field);
                }
                problems.push(Problem::new(loc, message).fix(fix));
                continue;
            }
        };
        problems.extend(check_item(&item, &mut patterns, at));
        if let Some(first) = items.position(&item.id).map(|i| lines[i]) {
            problems.push(
                Problem::new(
                    at().field("id"),
                    format!("duplicate id `{}`: already used on line {first}", item.id),
                )
                .fix("ids must be unique within the set; rename one of the two"),
            );
            continue;
        }
        lines.push(line_no);
        if !item.has_own_check() {
            unchecked.push(UncheckedItem {
                id: item.id.clone(),
                line: line_no,
                has_expected: item.expected.is_some(),
            });
        }
        let canonical = serde_json::to_vec(&item).expect("items always serialise");
        items.push_parts(&item, &canonical);
    }
    if problems.len() >= MAX_PROBLEMS {
        problems.push(Problem::new(
            Location::file(path),
            format!("stopped after {MAX_PROBLEMS} problems ({line_no} lines in the file)"),
        ));
    }
    if items.is_empty() && problems.is_empty() {
        problems.push(
            Problem::new(Location::file(path), "the golden set has no items")
                .fix("add one JSON object per line, e.g. {\"id\": \"q1\", \"question\": \"…\", \"keywords\": [\"…\"]}"),
        );
    }
    if !problems.is_empty() {
        return Err(Error::Input(problems));
    }
    items.shrink_to_fit();
    let sha256 = items.canonical_sha256();
    Ok((items, sha256, unchecked, patterns))
}

type ParseFailure = (Option<String>, String, String);

fn parse_item(text: &str) -> Result<Item, ParseFailure> {
    let mut de = serde_json::Deserializer::from_str(text);
    let item: Item = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        describe_json_error(&path, &inner)
    })?;
    de.end().map_err(|e| {
        (
            None,
            format!(
                "more than one JSON value on the line ({})",
                strip_position(&e)
            ),
            "put exactly one JSON object on each line".to_owned(),
        )
    })?;
    Ok(item)
}

fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => format!("{} at column {}", &msg[..i], e.column()),
        None => msg,
    }
}

fn describe_json_error(path: &str, e: &serde_json::Error) -> ParseFailure {
    use serde_json::error::Category;
    let msg = strip_position(e);
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => (
            None,
            format!("the line is not valid JSON: {msg}"),
            "each line must be one complete JSON object, e.g. {\"id\": \"q1\", \"question\": \"…\"}"
                .to_owned(),
        ),
        Category::Data => {
            if let Some(unknown) = between(&msg, "unknown field `", "`") {
                let fix = match closest(unknown, ITEM_FIELDS) {
                    Some(known) => format!("did you mean `{known}`? (known fields: {})", ITEM_FIELDS.join(", ")),
                    None => format!("remove it; known fields: {}", ITEM_FIELDS.join(", ")),
                };
                return (Some(unknown.to_owned()), format!("unknown field `{unknown}`"), fix);
            }
            if let Some(missing) = between(&msg, "missing field `", "`") {
                return (
                    Some(missing.to_owned()),
                    format!("the required field `{missing}` is missing"),
                    format!("add \"{missing}\": \"…\" to the object"),
                );
            }
            let field = path
                .split('.')
                .next()
                .filter(|f| !f.is_empty() && *f != "?")
                .map(|f| f.split('[').next().unwrap_or(f).to_owned());
            let fix = match field.as_deref() {
                Some("keywords" | "forbidden" | "tags") => {
                    format!("`{}` is a list of strings, e.g. [\"30 days\"]", field.as_deref().unwrap_or_default())
                }
                Some("match") => "`match` is \"any\" or \"all\"".to_owned(),
                Some("checks") => "`checks` is a list such as [{\"type\": \"regex\", \"pattern\": \"\\\\d+\"}, {\"type\": \"json\"}]".to_owned(),
                Some("context") => "`context` is a string or a list of strings".to_owned(),
                Some(f) => format!("`{f}` is a string"),
                None => "each line must be a JSON object".to_owned(),
            };
            (field, msg, fix)
        }
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// The known name closest to a typo, if it is close enough to be a likely intent.
pub fn closest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(typo, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The longest id or tag: room for any naming scheme, short enough for a report's table.
const MAX_NAME_CHARS: usize = 200;

/// Why a text cannot be an id or a tag, if it cannot. Ids and tags are printed in terminals, CI
/// logs, Markdown and XML: no control character (a newline forges a log line, ESC a terminal
/// sequence, NUL cuts a C string), no invisible or direction-changing character (two ids that look
/// the same, text shown reversed), nothing unreadably long.
fn name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Some(format!("is {chars} characters long, over {MAX_NAME_CHARS}"));
    }
    let c = name
        .chars()
        .find(|&c| c.is_control() || crate::text::is_hidden(c))?;
    Some(format!(
        "contains U+{:04X}, {}",
        u32::from(c),
        if c.is_control() {
            "a control character"
        } else {
            "an invisible or direction-changing character"
        }
    ))
}

fn check_item(item: &Item, patterns: &mut Patterns, at: impl Fn() -> Location) -> Vec<Problem> {
    let mut problems = Vec::new();
    if item.id.trim().is_empty() {
        problems.push(
            Problem::new(at().field("id"), "the id is empty")
                .fix("give every item a stable, unique id such as \"refund-01\""),
        );
    }
    const PRINTABLE: &str = "ids, tags and groups are printed in terminals, CI logs and reports: use visible characters, at most 200";
    if let Some(why) = name_problem(&item.id) {
        problems.push(Problem::new(at().field("id"), format!("the id {why}")).fix(PRINTABLE));
    }
    if let Some(why) = item.tags.iter().find_map(|t| name_problem(t)) {
        problems.push(Problem::new(at().field("tags"), format!("a tag {why}")).fix(PRINTABLE));
    }
    if let Some(why) = item.group.as_deref().and_then(name_problem) {
        problems.push(Problem::new(at().field("group"), format!("the group {why}")).fix(PRINTABLE));
    }
    if item.question.trim().is_empty() {
        problems.push(
            Problem::new(at().field("question"), "the question is empty")
                .fix("write the question the model is asked"),
        );
    }
    for (field, list) in [
        ("keywords", &item.keywords),
        ("forbidden", &item.forbidden),
        ("tags", &item.tags),
    ] {
        if list.iter().any(|s| s.trim().is_empty()) {
            problems.push(
                Problem::new(at().field(field), "contains an empty string")
                    .fix("an empty string matches every answer; remove it"),
            );
        }
    }
    if let Err(e) = patterns.add(&item.checks) {
        problems.push(
            Problem::new(at().field("checks"), format!("not a valid regex: {e}"))
                .fix("patterns use Rust regex syntax; escape backslashes in JSON (\"\\\\d+\")"),
        );
    }
    problems
}

/// Write the current hash into `golden.toml`, bumping `version` when the items changed since the
/// last lock and the user has not bumped it already. Returns a line saying what happened.
pub fn lock(dir: &Path) -> Result<String, Error> {
    let set = GoldenSet::load(dir)?;
    let meta_path = GoldenSet::meta_path(dir);
    let text = read_input(&meta_path, "golden.toml")?;
    let mut version = set.meta.version;
    let message = match set.lock_state() {
        LockState::Locked => {
            return Ok(format!(
                "{}@{} already locked at {}",
                set.meta.name,
                version,
                short(&set.sha256)
            ));
        }
        LockState::Unlocked => format!(
            "locked {}@{} at {}",
            set.meta.name,
            version,
            short(&set.sha256)
        ),
        LockState::Mismatch { locked } => {
            let bumped_by_user = set.meta.locked_version.is_some_and(|v| version > v);
            if !bumped_by_user {
                version += 1;
            }
            format!(
                "items changed ({} -> {}): {}@{} -> version {}, locked",
                short(&locked),
                short(&set.sha256),
                set.meta.name,
                set.meta.version,
                version
            )
        }
    };
    let updated = rewrite_lock_fields(&meta_path, &text, version, &set.sha256)?;
    // Write beside and rename, so a crash never leaves a half-written golden.toml.
    let tmp = meta_path.with_extension("toml.tmp");
    std::fs::write(&tmp, updated)
        .and_then(|()| std::fs::rename(&tmp, &meta_path))
        .map_err(|e| {
            Error::input(
                Location::file(&meta_path),
                format!("cannot write: {e}"),
                "check the file is writable",
            )
        })?;
    // Say "locked" only once the file, read back as every later run reads it, is locked.
    let relocked = GoldenSet::load(dir)?;
    if relocked.lock_state() != LockState::Locked {
        return Err(Error::input(
            Location::file(&meta_path),
            "the lock was written but does not read back as locked",
            "check golden.toml for a second `sha256` or `version` key in a table, and remove it",
        ));
    }
    Ok(message)
}

/// Set (or add) the `version`, `sha256` and `locked_version` keys with a format-preserving TOML
/// editor: comments, key order and quoting stay as the user wrote them, a quoted key (`"sha256" =`)
/// is the key it names, and a value's own trailing comment is kept.
fn rewrite_lock_fields(
    path: &Path,
    text: &str,
    version: u64,
    sha256: &str,
) -> Result<String, Error> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::input(
            Location::file(path),
            format!("not valid TOML: {}", e.message()),
            "correct the file, then run `goldgate golden lock` again",
        )
    })?;
    let version = i64::try_from(version).map_err(|_| {
        Error::input(
            Location::file(path).field("version"),
            format!("version {version} is beyond what TOML can hold"),
            "give a version below 2^63",
        )
    })?;
    let set = |doc: &mut toml_edit::DocumentMut, key: &str, value: toml_edit::Value, note: &str| {
        let mut value = value;
        match doc.get(key).and_then(toml_edit::Item::as_value) {
            Some(old) => *value.decor_mut() = old.decor().clone(),
            None if !note.is_empty() => value.decor_mut().set_suffix(note),
            None => {}
        }
        doc[key] = toml_edit::Item::Value(value);
    };
    set(&mut doc, "version", version.into(), "");
    set(
        &mut doc,
        "sha256",
        sha256.into(),
        "  # written by `goldgate golden lock`",
    );
    set(&mut doc, "locked_version", version.into(), "");
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_store_gives_back_what_was_pushed() {
        let item = |id: &str, q: &str, tags: &[&str]| Item {
            id: id.into(),
            question: q.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            keywords: vec!["30 days".into()],
            ..parse_item(r#"{"id": "x", "question": "y"}"#).unwrap()
        };
        let all = [
            item("a", "Plain?", &["billing"]),
            item(
                "b",
                "A \"quoted\" question\nover two lines?",
                &["returns", "billing"],
            ),
            item("c", "Untagged?", &[]),
        ];
        let mut items: Items = all.iter().cloned().collect();
        assert_eq!(items.len(), 3);
        for (i, it) in all.iter().enumerate() {
            assert_eq!(items.get(i), *it);
            assert_eq!(items.id(i), it.id);
            assert_eq!(items.question(i), it.question);
            assert_eq!(items.tags(i).collect::<Vec<_>>(), it.tags);
            assert_eq!(items.json(i), serde_json::to_vec(it).unwrap());
        }
        assert_eq!(items.tag_names(), ["billing", "returns"]);

        let mut copy = Items::default();
        copy.push_from(&items, 1);
        assert_eq!(copy.get(0), all[1]);
        assert_eq!(copy.tag_names(), ["returns", "billing"]);

        items.retain_ids(|id| id != "b");
        assert_eq!(items.ids().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(items.get(1), all[2]);
        items.truncate(1);
        assert_eq!(items.iter().collect::<Vec<_>>(), [all[0].clone()]);
    }

    #[test]
    fn reference_and_provenance_are_optional_and_strict() {
        let plain = r#"{"id":"a","question":"q?","keywords":["k"]}"#;
        assert_eq!(
            serde_json::to_string(&parse_item(plain).unwrap()).unwrap(),
            plain
        );
        let logged = r#"{"id":"a","question":"q?","reference":"r","provenance":{"file":"t.jsonl","line":3,"timestamp":"2025-03-01T10:00:00Z","id":"r1"}}"#;
        let item = parse_item(logged).unwrap();
        assert_eq!(item.reference.as_deref(), Some("r"));
        assert_eq!(item.provenance.as_ref().map(|p| p.line), Some(3));
        assert_eq!(serde_json::to_string(&item).unwrap(), logged);
        let (field, message, _) =
            parse_item(r#"{"id":"a","question":"q?","provenance":{"file":"t","line":1,"row":2}}"#)
                .unwrap_err();
        assert!(message.contains("row"), "{field:?}: {message}");
    }

    #[test]
    fn items_are_found_by_id_past_every_growth_of_the_index() {
        let item = |id: String| Item {
            id,
            ..parse_item(r#"{"id": "x", "question": "y"}"#).unwrap()
        };
        let mut items = Items::default();
        assert_eq!(items.position("item-0"), None);
        for n in 0..5000 {
            items.push(&item(format!("item-{n}")));
            // The item just pushed, the first, and one never pushed, at every size.
            assert_eq!(items.position(&format!("item-{n}")), Some(n));
            assert_eq!(items.position("item-0"), Some(0));
            assert_eq!(items.position(&format!("item-{}", n + 1)), None);
        }
        for n in (0..5000).step_by(7) {
            assert_eq!(items.position(&format!("item-{n}")), Some(n));
        }
        assert_eq!(items.position(""), None);
        assert_eq!(items.position("item-"), None);
        // An id given twice (a hand-edited items.jsonl) is its last item, as a map built from
        // (id, index) pairs would say.
        items.push(&item("item-3".into()));
        assert_eq!(items.position("item-3"), Some(5000));
        // A copy keeps only what it kept, at its own positions.
        items.retain_ids(|id| id.ends_with('7'));
        assert_eq!(items.position("item-7"), Some(0));
        assert_eq!(items.position("item-17"), Some(1));
        assert_eq!(items.position("item-3"), None);
    }

    #[test]
    fn the_set_hash_is_over_each_items_hash_in_id_order() {
        let items: Items = ["b", "c", "a"]
            .iter()
            .map(|id| parse_item(&format!(r#"{{"id": "{id}", "question": "q {id}?"}}"#)).unwrap())
            .collect();
        let mut expected = Sha256::new();
        for i in [2, 0, 1] {
            expected.update(Sha256::digest(serde_json::to_vec(&items.get(i)).unwrap()));
        }
        assert_eq!(items.canonical_sha256(), hex(&expected.finalize()));
    }

    fn write_set(dir: &Path, items: &str) {
        std::fs::write(dir.join("golden.toml"), "name = \"t\"\nversion = 1\n").unwrap();
        std::fs::write(dir.join("items.jsonl"), items).unwrap();
    }

    fn problems(dir: &Path) -> String {
        GoldenSet::load(dir).unwrap_err().to_string()
    }

    #[test]
    fn unknown_field_names_line_field_and_suggests_fix() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "{\"id\":\"a\",\"question\":\"q\"}\n{\"id\":\"b\",\"question\":\"q\",\"keyword\":[\"x\"]}\n",
        );
        let msg = problems(d.path());
        assert!(msg.contains("items.jsonl:2: field `keyword`"), "{msg}");
        assert!(msg.contains("did you mean `keywords`"), "{msg}");
    }

    #[test]
    fn ids_tags_and_groups_are_printable_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let long = "x".repeat(201);
        write_set(
            d.path(),
            &format!(
                "{{\"id\":\"a\\nb\",\"question\":\"q\"}}\n{{\"id\":\"esc\\u001b[31m\",\"question\":\"q\"}}\n{{\"id\":\"bidi\\u202e\",\"question\":\"q\"}}\n{{\"id\":\"{long}\",\"question\":\"q\"}}\n{{\"id\":\"ok\",\"question\":\"q\",\"tags\":[\"zero\\u200bwidth\"]}}\n{{\"id\":\"fine/été-01.v2\",\"question\":\"q\",\"tags\":[\"billing\"]}}\n{{\"id\":\"grouped\",\"question\":\"q\",\"group\":\"passage\\u202e7\"}}\n{{\"id\":\"grouped-ok\",\"question\":\"q\",\"group\":\"passage 7\"}}\n"
            ),
        );
        let msg = problems(d.path());
        assert!(
            msg.contains(":1: field `id`: the id contains U+000A, a control character"),
            "{msg}"
        );
        assert!(
            msg.contains(":2: field `id`: the id contains U+001B"),
            "{msg}"
        );
        assert!(
            msg.contains(":3: field `id`: the id contains U+202E, an invisible"),
            "{msg}"
        );
        assert!(
            msg.contains(":4: field `id`: the id is 201 characters long"),
            "{msg}"
        );
        assert!(
            msg.contains(":5: field `tags`: a tag contains U+200B"),
            "{msg}"
        );
        assert!(!msg.contains(":6:"), "{msg}");
        assert!(
            msg.contains(":7: field `group`: the group contains U+202E"),
            "{msg}"
        );
        assert!(!msg.contains(":8:"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "{\"id\":\"a\",\"question\":\"q\",\"keywords\":\"x\"}\n",
        );
        let msg = problems(d.path());
        assert!(msg.contains(":1: field `keywords`"), "{msg}");
        assert!(msg.contains("list of strings"), "{msg}");
    }

    #[test]
    fn duplicate_ids_empty_question_bad_utf8_and_bad_json_are_all_reported() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = b"{\"id\":\"a\",\"question\":\"q\"}\n{\"id\":\"a\",\"question\":\"q2\"}\n{\"id\":\"c\",\"question\":\" \"}\n".to_vec();
        bytes.extend_from_slice(b"{\"id\":\"d\",\"question\":\"\xff\"}\n{\"id\": \"e\",\n");
        std::fs::write(d.path().join("golden.toml"), "name = \"t\"\nversion = 1\n").unwrap();
        std::fs::write(d.path().join("items.jsonl"), bytes).unwrap();
        let msg = problems(d.path());
        assert!(
            msg.contains(":2: field `id`: duplicate id `a`: already used on line 1"),
            "{msg}"
        );
        assert!(
            msg.contains(":3: field `question`: the question is empty"),
            "{msg}"
        );
        assert!(msg.contains(":4: the line is not valid UTF-8"), "{msg}");
        assert!(msg.contains(":5: the line is not valid JSON"), "{msg}");
    }

    #[test]
    fn missing_field_and_bad_match_mode() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "{\"question\":\"q\"}\n{\"id\":\"b\",\"question\":\"q\",\"match\":\"some\"}\n",
        );
        let msg = problems(d.path());
        assert!(
            msg.contains(":1: field `id`: the required field `id` is missing"),
            "{msg}"
        );
        assert!(msg.contains(":2: field `match`"), "{msg}");
    }

    #[test]
    fn hash_ignores_key_order_whitespace_and_line_order_but_not_content() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        write_set(
            a.path(),
            "{\"id\":\"1\",\"question\":\"q\",\"context\":\"c\"}\n{\"id\":\"2\",\"question\":\"r\"}\n",
        );
        write_set(
            b.path(),
            "{ \"question\": \"r\", \"id\": \"2\" }\n\n{\"context\":[\"c\"], \"question\":\"q\",\"id\":\"1\", \"match\": \"any\"}\n",
        );
        write_set(
            c.path(),
            "{\"id\":\"1\",\"question\":\"q?\",\"context\":\"c\"}\n{\"id\":\"2\",\"question\":\"r\"}\n",
        );
        let ha = GoldenSet::load(a.path()).unwrap().sha256;
        assert_eq!(ha, GoldenSet::load(b.path()).unwrap().sha256);
        assert_ne!(ha, GoldenSet::load(c.path()).unwrap().sha256);
    }

    #[test]
    fn lock_then_edit_then_lock_bumps_version_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("golden.toml"),
            "# my set\nname = \"t\"\nversion = 3\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("items.jsonl"),
            "{\"id\":\"1\",\"question\":\"q\"}\n",
        )
        .unwrap();
        assert_eq!(
            GoldenSet::load(d.path()).unwrap().lock_state(),
            LockState::Unlocked
        );
        lock(d.path()).unwrap();
        let set = GoldenSet::load(d.path()).unwrap();
        assert_eq!(set.lock_state(), LockState::Locked);
        assert_eq!(set.meta.version, 3);
        assert!(set.require_locked().is_ok());

        std::fs::write(
            d.path().join("items.jsonl"),
            "{\"id\":\"1\",\"question\":\"q2\"}\n",
        )
        .unwrap();
        let set = GoldenSet::load(d.path()).unwrap();
        assert!(matches!(set.lock_state(), LockState::Mismatch { .. }));
        let err = set.require_locked().unwrap_err().to_string();
        assert!(err.contains("golden.toml: field `sha256`"), "{err}");
        assert!(err.contains("--allow-unlocked"), "{err}");
        lock(d.path()).unwrap();
        let set = GoldenSet::load(d.path()).unwrap();
        assert_eq!(set.meta.version, 4);
        assert_eq!(set.lock_state(), LockState::Locked);
        let text = std::fs::read_to_string(d.path().join("golden.toml")).unwrap();
        assert!(text.starts_with("# my set\n"), "comments survive: {text}");
    }

    #[test]
    fn a_user_bump_is_not_bumped_again() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("golden.toml"), "name = \"t\"\nversion = 1\n").unwrap();
        std::fs::write(
            d.path().join("items.jsonl"),
            "{\"id\":\"1\",\"question\":\"q\"}\n",
        )
        .unwrap();
        lock(d.path()).unwrap();
        std::fs::write(
            d.path().join("items.jsonl"),
            "{\"id\":\"1\",\"question\":\"q2\"}\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(d.path().join("golden.toml")).unwrap();
        std::fs::write(
            d.path().join("golden.toml"),
            text.replace("\nversion = 1\n", "\nversion = 2\n"),
        )
        .unwrap();
        lock(d.path()).unwrap();
        assert_eq!(GoldenSet::load(d.path()).unwrap().meta.version, 2);
    }

    /// The cases a line-by-line editor got wrong: a quoted key (duplicated, so the file no longer
    /// parsed), `version=` with no spaces and a trailing comment, keys written after a comment
    /// line that mentions them, a value that mentions one, a multi-line string.
    #[test]
    fn lock_edits_toml_as_toml() {
        for meta in [
            "name = \"t\"\n\"version\" = 2\n\"sha256\" = \"0000\"\n",
            "name = \"t\"\nversion=2 # bumped by hand\n",
            "# version = 1 was the first\nname = \"t\"\nversion = 2\ndescription = \"sha256 = x\"\n",
            "name = 't'\nversion = 2\nsha256 = \"\"\"\nabc\"\"\"\n",
        ] {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("golden.toml"), meta).unwrap();
            std::fs::write(
                d.path().join("items.jsonl"),
                "{\"id\":\"1\",\"question\":\"q\"}\n",
            )
            .unwrap();
            let said = lock(d.path()).unwrap_or_else(|e| panic!("{meta}: {e}"));
            let set = GoldenSet::load(d.path()).unwrap_or_else(|e| panic!("{meta}: {e}"));
            assert_eq!(set.lock_state(), LockState::Locked, "{meta} -> {said}");
            let text = std::fs::read_to_string(d.path().join("golden.toml")).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(
                table["sha256"].as_str(),
                Some(set.sha256.as_str()),
                "{text}"
            );
            for comment in meta
                .lines()
                .filter_map(|l| l.split_once('#').map(|(_, c)| c))
            {
                assert!(text.contains(comment), "comment `{comment}` kept: {text}");
            }
        }
    }
}
